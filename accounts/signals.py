"""A session or account that ends closes its open WebSockets (`doce.consumers`).

- Logout: the sockets of that session close with 4401 (its browser is signed out).
- A password change or a deactivation (any save that changes `password` or `is_active`):
  every socket of the user closes with 4409; browsers reconnect and the handshake lets in
  only sessions that still hold (Django invalidates the others through the session hash).

Bulk `QuerySet.update()` bypasses model signals: change users through `save()` (the admin,
the settings page and `manage.py changepassword` do).
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from doce.consumers import user_group

User = get_user_model()
_CREDENTIALS = ("password", "is_active")


def _tell_sockets(user_id: int, message: dict) -> None:
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(user_group(user_id), message)


@receiver(user_logged_out)
def close_sockets_of_ended_session(sender, request, user, **kwargs) -> None:
    """Sent by `django.contrib.auth.logout` before it flushes the session."""
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if user is not None and session_key:
        _tell_sockets(user.pk, {"type": "session.ended", "session_key": session_key})


@receiver(pre_save, sender=User)
def remember_credentials(sender, instance, update_fields=None, **kwargs) -> None:
    instance._doce_credentials_before = None
    if instance.pk is None or (
        update_fields is not None and not set(_CREDENTIALS) & set(update_fields)
    ):
        return  # a new user, or e.g. `last_login` alone
    instance._doce_credentials_before = (
        sender.objects.filter(pk=instance.pk).values_list(*_CREDENTIALS).first()
    )


@receiver(post_save, sender=User)
def close_sockets_when_credentials_change(sender, instance, created, **kwargs) -> None:
    before = getattr(instance, "_doce_credentials_before", None)
    if created or before is None or before == (instance.password, instance.is_active):
        return
    user_id = instance.pk
    transaction.on_commit(lambda: _tell_sockets(user_id, {"type": "account.changed"}))
