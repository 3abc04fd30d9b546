from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Users, first-run setup, sign-in, per-user settings and provider credentials."""

    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from accounts import signals  # noqa: F401 - connects the receivers
