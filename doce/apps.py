from django.apps import AppConfig


class DoceConfig(AppConfig):
    """The project package as an app: shared models (event outbox) and templates tags."""

    name = "doce"
    verbose_name = "doce"
