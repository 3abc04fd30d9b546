"""Account-level models. Users are Django's own `auth.User`."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from doce.crypto import EncryptedTextField


class Instance(models.Model):
    """The single row describing this doce installation (id=1, created by migration).

    First-run setup locks this row, so two concurrent setup submissions create one admin.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    setup_completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "instance"

    def __str__(self) -> str:
        return "doce instance"

    @classmethod
    def get(cls) -> Instance:
        """Return the instance row, creating it if a database was made without migrations."""
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj


URL_CREDENTIALS_MESSAGE = (
    "Remove the user name and password from this URL: URLs are stored and shown in clear. "
    "Put the secret in the API key field, which is stored encrypted."
)


def reject_url_credentials(url: str) -> None:
    """Refuse a URL carrying credentials (`http://user:pass@host/v1`, also a bare `user@`).

    URLs are stored and shown in clear (Settings, admin); secrets belong in the encrypted
    key field. Raises `ValidationError` (code `url_credentials`). Malformed URLs are left
    to the URL validator.
    """
    try:
        parts = urlsplit(url or "")
    except ValueError:
        return
    if "@" in parts.netloc:
        raise ValidationError(URL_CREDENTIALS_MESSAGE, code="url_credentials")


def url_without_credentials(url: str) -> str:
    """`url` without its `user:pass@` part (unchanged when it has none or is malformed)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


class ProviderKind(models.TextChoices):
    OPENROUTER = "openrouter", "OpenRouter"
    ANTHROPIC = "anthropic", "Anthropic"
    OPENAI = "openai", "OpenAI"
    OPENAI_COMPATIBLE = "openai-compatible", "OpenAI-compatible (Ollama, LM Studio, vLLM, …)"


# Suggested models per hosted provider, offered when the user adds a key; editable.
DEFAULT_MODELS: dict[str, list[str]] = {
    ProviderKind.OPENROUTER: ["google/gemini-2.5-flash", "anthropic/claude-sonnet-4"],
    ProviderKind.ANTHROPIC: ["claude-sonnet-4-20250514", "claude-3-5-haiku-20241022"],
    ProviderKind.OPENAI: ["gpt-4.1", "gpt-4.1-mini"],
}


class ProviderCredential(models.Model):
    """A user's credentials for one model provider, passed only to their own agent containers.

    `provider_id` is the OpenCode provider id the models are addressed by
    (`<provider_id>/<model>`): the kind's own id for hosted providers, a user-chosen slug for
    OpenAI-compatible endpoints. The API key is encrypted at rest and never shown again.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="providers"
    )
    kind = models.CharField(max_length=32, choices=ProviderKind.choices)
    provider_id = models.SlugField(max_length=40)
    label = models.CharField(max_length=80, blank=True, default="")
    # OpenAI-compatible endpoints only, e.g. http://127.0.0.1:11434/v1
    base_url = models.URLField(
        max_length=300, blank=True, default="", validators=[reject_url_credentials]
    )
    api_key = EncryptedTextField(blank=True, default="")
    # Model names as the provider knows them (without the provider prefix).
    model_names = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "provider_id"], name="accounts_provider_unique_per_user"
            )
        ]
        ordering = ["provider_id"]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.user})"

    @property
    def display_name(self) -> str:
        return self.label or self.get_kind_display()

    @property
    def masked_key(self) -> str:
        """The key as shown after saving: its last 4 characters only."""
        if not self.api_key:
            return "no key"
        return "••••" + self.api_key[-4:] if len(self.api_key) > 8 else "••••"

    def model_refs(self) -> list[str]:
        """This provider's models as `provider/model` references."""
        return [f"{self.provider_id}/{name}" for name in self.model_names]


class Preferences(models.Model):
    """Per-user preferences: the default model for new projects (`provider/model`)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preferences"
    )
    default_model = models.CharField(max_length=200, blank=True, default="")

    def __str__(self) -> str:
        return f"Preferences of {self.user}"

    @classmethod
    def for_user(cls, user) -> Preferences:
        prefs, _ = cls.objects.get_or_create(user=user)
        return prefs


class ApiTokenQuerySet(models.QuerySet):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """A personal API token. Only its SHA-256 digest is stored; the token is shown once.

    Tokens are `doce_` + 40 random url-safe characters (240 bits), so a fast digest is
    enough: there is nothing to brute-force.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=80)
    digest = models.CharField(max_length=64, unique=True)
    # The first characters, so users can tell their tokens apart.
    prefix = models.CharField(max_length=12)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
