"""Account actions: each one atomic, each one a plain function."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts.models import Instance


class SetupAlreadyDone(Exception):
    """First-run setup was attempted after a user already exists."""


def create_first_admin(*, username: str, email: str, password: str):
    """Create the first administrator (a superuser) and mark setup complete.

    The instance row is locked for the check-and-insert, so two concurrent submissions
    create exactly one admin (Postgres: row lock; SQLite: the IMMEDIATE transaction's
    write lock). Raises `SetupAlreadyDone` if any user exists.
    """
    User = get_user_model()
    with transaction.atomic():
        Instance.objects.get_or_create(pk=1)
        instance = Instance.objects.select_for_update().get(pk=1)
        if User.objects.exists():
            raise SetupAlreadyDone
        user = User.objects.create_superuser(username=username, email=email, password=password)
        instance.setup_completed_at = timezone.now()
        instance.save(update_fields=["setup_completed_at"])
    return user
