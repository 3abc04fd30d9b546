import structlog
from django.apps import AppConfig
from django.apps import apps as installed_apps
from django.db.models.signals import post_migrate

from doce.crypto import reencrypt_legacy_secrets


class DoceConfig(AppConfig):
    """The project package as an app: shared models (event outbox) and templates tags."""

    name = "doce"
    verbose_name = "doce"

    def ready(self) -> None:
        post_migrate.connect(_reencrypt_legacy_secrets, sender=self)
        from doce.edge.health import check_edge
        from doce.health import register_check

        register_check("edge", check_edge)


def _reencrypt_legacy_secrets(sender, using, apps=None, **kwargs) -> None:
    """After `migrate`: secrets stored under the old passphrase derivation move to the current
    key (see `doce.crypto`), so an upgrade needs no extra step. (`flush` sends no `apps`.)"""
    count = reencrypt_legacy_secrets((apps or installed_apps).get_models(), using=using)
    if count:
        structlog.get_logger("doce.crypto").info("crypto.secrets_reencrypted", count=count)
