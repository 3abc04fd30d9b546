"""Account actions: each one atomic, each one a plain function."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken, Instance, Preferences, providers_for_agent


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


# --- Providers and models -----------------------------------------------------------------


def available_models(user) -> list[str]:
    """Every `provider/model` reference the user may use (their providers and the instance
    providers), in a stable order."""
    refs: list[str] = []
    for credential in providers_for_agent(user):
        refs.extend(credential.model_refs())
    return refs


def model_takes_images(user, model_ref: str) -> bool:
    """True when `model_ref` (`provider/model`, one of the user's) may get image
    attachments (`ProviderCredential.takes_images` of the provider the user's agents use
    for it); False for a model the user has no provider for."""
    provider_id = model_ref.partition("/")[0]
    return any(
        credential.takes_images
        for credential in providers_for_agent(user)
        if credential.provider_id == provider_id and model_ref in credential.model_refs()
    )


def default_model(user) -> str:
    """The user's default model if it is still available, else their first one, else ""."""
    models = available_models(user)
    preferred = Preferences.for_user(user).default_model
    if preferred in models:
        return preferred
    return models[0] if models else ""


def set_default_model(user, model_ref: str) -> None:
    """Make `model_ref` the user's default. Raises `ValueError` if it is not available."""
    if model_ref not in available_models(user):
        raise ValueError("Choose one of the models of your configured providers.")
    prefs = Preferences.for_user(user)
    prefs.default_model = model_ref
    prefs.save(update_fields=["default_model"])


# --- API tokens ---------------------------------------------------------------------------

TOKEN_PREFIX = "doce_"  # noqa: S105 (a public prefix, not a secret)
TOKEN_LAST_USED_RESOLUTION = timedelta(minutes=1)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(user, name: str) -> tuple[ApiToken, str]:
    """Create a personal API token; returns (row, plaintext). The plaintext is not stored."""
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(30)
    token = ApiToken.objects.create(
        user=user, name=name, digest=_digest(plaintext), prefix=plaintext[:10]
    )
    return token, plaintext


def user_for_api_token(plaintext: str):
    """The active user owning `plaintext`, or None. Records last use (minute resolution)."""
    if not plaintext.startswith(TOKEN_PREFIX) or len(plaintext) > 100:
        return None
    token = (
        ApiToken.objects.active()
        .select_related("user")
        .filter(digest=_digest(plaintext), user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > TOKEN_LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def revoke_api_token(user, token_id: int) -> bool:
    """Revoke one of `user`'s tokens; False when there is no such active token of theirs."""
    updated = (
        ApiToken.objects.active().filter(user=user, pk=token_id).update(revoked_at=timezone.now())
    )
    return updated == 1
