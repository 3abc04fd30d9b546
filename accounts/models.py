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


class ProviderCredentialQuerySet(models.QuerySet):
    def usable_by(self, user) -> ProviderCredentialQuerySet:
        """The providers `user`'s agents may use: their own, then the instance providers.

        A user's own provider shadows an instance provider of the same id (see
        `for_agent`); this queryset holds both.
        """
        return self.filter(models.Q(user=user) | models.Q(user__isnull=True))

    def instance(self) -> ProviderCredentialQuerySet:
        """Instance providers: set by operators in admin, usable by every user."""
        return self.filter(user__isnull=True)


def providers_for_agent(user) -> list[ProviderCredential]:
    """The providers an agent of `user` sees, one per provider id: the user's own provider
    wins over an instance provider with the same id. Ordered by provider id."""
    chosen: dict[str, ProviderCredential] = {}
    for credential in ProviderCredential.objects.usable_by(user).order_by("user_id"):
        # Instance providers (user NULL) sort last on SQLite and first on Postgres: decide
        # explicitly instead of trusting the NULL order.
        current = chosen.get(credential.provider_id)
        if current is None or (current.is_instance and not credential.is_instance):
            chosen[credential.provider_id] = credential
    return [chosen[key] for key in sorted(chosen)]


# The public APIs of the hosted kinds (each ends in its version segment, like a compatible
# server's base URL); the gateway appends the agent's path after it.
HOSTED_BASE_URLS: dict[str, str] = {
    ProviderKind.OPENROUTER: "https://openrouter.ai/api/v1",
    ProviderKind.ANTHROPIC: "https://api.anthropic.com/v1",
    ProviderKind.OPENAI: "https://api.openai.com/v1",
}


class ProviderCredential(models.Model):
    """Credentials for one model provider: a user's own, or an instance provider (no user)
    that operators set in admin for everyone.

    `provider_id` is the OpenCode provider id the models are addressed by
    (`<provider_id>/<model>`): the kind's own id for hosted providers, a user-chosen slug for
    OpenAI-compatible endpoints. The API key is encrypted at rest, never shown again, and
    never leaves doce: agents reach the provider through the model gateway (`gateway`),
    which adds the key on the way out. `base_url` of a hosted kind overrides its usual API
    address (empty: the provider's public API, `HOSTED_BASE_URLS`).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="providers",
        null=True,
        blank=True,
        help_text="Empty for an instance provider: usable by every user, key never shown.",
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
    model_names = models.JSONField(default=list, blank=True)
    # What the server said about its models' tool-call support when they were fetched
    # ({"<model>": true|false}); models it said nothing about are absent.
    model_tools = models.JSONField(default=dict, blank=True)
    # OpenAI-compatible endpoints only: whether their models take images (vision models such
    # as llava or qwen2.5-vl). Hosted providers' models do (`takes_images`).
    accepts_images = models.BooleanField(
        default=False,
        help_text="OpenAI-compatible only: its models accept images in prompts.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProviderCredentialQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "provider_id"], name="accounts_provider_unique_per_user"
            ),
            models.UniqueConstraint(
                fields=["provider_id"],
                condition=models.Q(user__isnull=True),
                name="accounts_instance_provider_unique",
            ),
        ]
        ordering = ["provider_id"]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.user or 'instance'})"

    @property
    def is_instance(self) -> bool:
        """True for an instance provider (operators', usable by everyone)."""
        return self.user_id is None

    @property
    def display_name(self) -> str:
        return self.label or self.get_kind_display()

    @property
    def upstream_base_url(self) -> str:
        """Where the gateway sends this provider's requests (no trailing slash)."""
        return (self.base_url or HOSTED_BASE_URLS.get(self.kind, "")).rstrip("/")

    @property
    def masked_key(self) -> str:
        """The key as shown after saving: its last 4 characters only."""
        if not self.api_key:
            return "no key"
        return "••••" + self.api_key[-4:] if len(self.api_key) > 8 else "••••"

    def model_refs(self) -> list[str]:
        """This provider's models as `provider/model` references."""
        return [f"{self.provider_id}/{name}" for name in self.model_names]

    @property
    def takes_images(self) -> bool:
        """True when this provider's models may get image attachments: every hosted kind
        (OpenAI, Anthropic and OpenRouter's usual models read images), an OpenAI-compatible
        endpoint only when marked so (`accepts_images`): a local text model sent an image
        fails or ignores it without saying so."""
        return self.kind != ProviderKind.OPENAI_COMPATIBLE or self.accepts_images


class Preferences(models.Model):
    """Per-user preferences: the default model for new projects (`provider/model`)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preferences"
    )
    default_model = models.CharField(max_length=200, blank=True, default="")
    # Model tokens (input + output) this user may spend through the gateway per calendar
    # month (UTC); NULL: the instance default DOCE_GATEWAY_MONTHLY_TOKENS; 0: no limit.
    monthly_token_budget = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Tokens per month through the model gateway. Empty: the instance default "
        "(DOCE_GATEWAY_MONTHLY_TOKENS); 0: no limit.",
    )

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


class UsageRecord(models.Model):
    """One request an agent made through the model gateway (written by `gateway.proxy`).

    Tokens come from the provider's own usage fields (OpenAI's usage chunk, Anthropic's
    `message_start`/`message_delta` usage); NULL when the server reported none. Times are
    milliseconds from the gateway receiving the request: to the upstream's first byte and to
    the end of the response. `status` is the HTTP status the agent got (gateway refusals
    included, with `error` saying why). `project_id` is kept as text so usage outlives a
    deleted project.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_records"
    )
    project_id = models.CharField(max_length=16, db_index=True)
    provider_id = models.CharField(max_length=40)
    instance_provider = models.BooleanField(default=False)
    model = models.CharField(max_length=200, blank=True, default="")
    input_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    output_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    ttfb_ms = models.PositiveIntegerField(null=True, blank=True)
    total_ms = models.PositiveIntegerField(null=True, blank=True)
    status = models.PositiveSmallIntegerField()
    error = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Budgets sum a user's tokens of the month; Settings groups them by day.
            models.Index(fields=["user", "created_at"], name="accounts_usage_user_time"),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.provider_id}/{self.model} {self.status}"

    @property
    def tokens(self) -> int:
        """Input plus output tokens (unknown counts as 0)."""
        return (self.input_tokens or 0) + (self.output_tokens or 0)
