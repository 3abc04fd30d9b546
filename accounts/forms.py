"""Forms for setup, users, providers, preferences and API tokens."""

from __future__ import annotations

import re
from typing import cast
from urllib.parse import urlsplit

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import BaseUserCreationForm, PasswordChangeForm
from django.core.exceptions import ValidationError

from accounts.models import (
    DEFAULT_MODELS,
    ProviderCredential,
    ProviderKind,
    reject_url_credentials,
    url_without_credentials,
)
from doce.addresses import AddressRefused, check_address
from doce.text import LineField, validate_line


def refused_literal_address(url: str) -> str:
    """Why a URL whose host is a literal IP address is never callable (link-local, metadata,
    reserved), or "". Names are resolved and checked by the gateway on every request."""
    try:
        host = (urlsplit(url).hostname or "").strip("[]")
        check_address(host, allow_private=True)
    except ValueError:
        return ""  # a name, not an address
    except AddressRefused as exc:
        return exc.reason
    return ""


class SetupForm(BaseUserCreationForm):
    """Create the first administrator: username, optional email, password twice."""

    email = forms.EmailField(required=False, help_text="Optional. Used for password resets.")

    class Meta(BaseUserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")


class AddUserForm(BaseUserCreationForm):
    """An administrator adds a user; `is_staff` makes them an administrator too."""

    email = forms.EmailField(required=False)
    is_staff = forms.BooleanField(
        required=False,
        label="Administrator",
        help_text="Administrators can add users and see every job in the queue.",
    )

    class Meta(BaseUserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email", "is_staff")


_MODEL_NAME = re.compile(r"^[A-Za-z0-9._:/@+\-]{1,120}$")
MAX_MODELS = 40


class SettingsPasswordForm(PasswordChangeForm):
    """Django's password change form without its autofocus: on the settings page the
    password section is one of several, and focusing it scrolled the page (473 px on a
    phone) to a field the user did not come for."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["old_password"].widget.attrs.pop("autofocus", None)


class ProviderForm(forms.Form):
    """Add a model provider: a hosted one (key) or an OpenAI-compatible endpoint (URL)."""

    kind = forms.ChoiceField(label="Provider", choices=ProviderKind.choices)
    api_key = LineField(
        label="API key",
        required=False,
        max_length=500,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Stored encrypted. Optional for local servers that need none.",
    )
    base_url = forms.URLField(
        label="Base URL",
        required=False,
        max_length=300,
        validators=[validate_line, reject_url_credentials],
        assume_scheme="http",
        # Shown only while "OpenAI-compatible" is chosen (doce.js; all fields without it).
        widget=forms.URLInput(attrs={"data-shown-for": "id_kind=openai-compatible"}),
        help_text="OpenAI-compatible only, e.g. http://127.0.0.1:11434/v1 (Ollama). doce calls "
        "it from this machine through its model gateway, so a server listening on 127.0.0.1 "
        "works (for administrators, or for everyone when the operator allows private "
        "addresses). Link-local and cloud metadata addresses are always refused.",
    )
    provider_id = forms.SlugField(
        label="Provider id",
        required=False,
        max_length=40,
        widget=forms.TextInput(attrs={"data-shown-for": "id_kind=openai-compatible"}),
        help_text="OpenAI-compatible only: a short name for this endpoint, e.g. ollama. "
        "Models are then chosen as ollama/<model>.",
    )
    label = LineField(label="Display name", required=False, max_length=80)
    model_names = forms.CharField(
        label="Models",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line or comma-separated, as the provider names them. "
        "Leave empty for a hosted provider to get its usual models.",
    )

    accepts_images = forms.BooleanField(
        label="Its models accept images",
        required=False,
        widget=forms.CheckboxInput(attrs={"data-shown-for": "id_kind=openai-compatible"}),
        help_text="OpenAI-compatible only: tick for vision models (e.g. llava, qwen2.5-vl), so "
        "images can be attached to prompts. Hosted providers' models always can.",
    )

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_model_names(self) -> list[str]:
        raw = self.cleaned_data.get("model_names", "")
        names = [n.strip() for n in re.split(r"[,\n]", raw) if n.strip()]
        bad = [n for n in names if not _MODEL_NAME.match(n)]
        if bad:
            raise ValidationError(f"Not a model name: {bad[0][:40]!r} (no spaces or quotes).")
        if len(names) > MAX_MODELS:
            raise ValidationError(f"At most {MAX_MODELS} models per provider.")
        return list(dict.fromkeys(names))

    def clean(self) -> dict:
        data = super().clean() or {}
        if self.has_error("base_url", "url_credentials"):
            self._forget_url_credentials()
        kind = data.get("kind")
        if kind is None:
            return data
        if kind == ProviderKind.OPENAI_COMPATIBLE:
            self._clean_compatible(data)
        else:
            self._clean_hosted(data, kind)
        provider_id = data.get("provider_id")
        if (
            provider_id
            and ProviderCredential.objects.filter(user=self.user, provider_id=provider_id).exists()
        ):
            self.add_error(
                "provider_id" if kind == ProviderKind.OPENAI_COMPATIBLE else "kind",
                f"You already have a provider called {provider_id}; delete it first to replace it.",
            )
        return data

    def _clean_compatible_url(self, data: dict) -> None:
        if "base_url" in self.errors:
            return  # refused by the field already, with its own reason
        if not data.get("base_url"):
            self.add_error("base_url", "An OpenAI-compatible provider needs its base URL.")
        elif not data["base_url"].lower().startswith(("http://", "https://")):
            self.add_error("base_url", "Use an http:// or https:// URL.")
        else:
            reason = refused_literal_address(data["base_url"])
            if reason:
                self.add_error("base_url", f"doce never calls this address: {reason}.")

    def _forget_url_credentials(self) -> None:
        """Show a refused URL again without its credentials: the secret is not sent back."""
        name = self.add_prefix("base_url")
        self.data = {**self.data, name: url_without_credentials(str(self.data.get(name, "")))}

    def _clean_hosted(self, data: dict, kind: str) -> None:
        if not data.get("api_key"):
            self.add_error("api_key", "This provider needs an API key.")
        data["provider_id"] = kind
        data["base_url"] = ""
        data["accepts_images"] = False  # the flag is for compatible endpoints only
        if not data.get("model_names"):
            data["model_names"] = list(DEFAULT_MODELS.get(kind, []))

    def _clean_compatible(self, data: dict) -> None:
        self._clean_compatible_url(data)
        provider_id = data.get("provider_id")
        if not provider_id:
            self.add_error("provider_id", "Give this endpoint a short id, e.g. ollama.")
        elif provider_id in {choice.value for choice in ProviderKind}:
            self.add_error("provider_id", f"{provider_id} is a built-in provider; pick another id.")
        if not data.get("model_names"):
            self.add_error("model_names", "List at least one model this endpoint serves.")


class DefaultModelForm(forms.Form):
    """Pick the default model for new projects among the user's providers' models."""

    default_model = forms.ChoiceField(label="Default model", choices=())

    def __init__(self, *args, models: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["default_model"]).choices = [(m, m) for m in models]


class ApiTokenForm(forms.Form):
    name = LineField(
        label="Token name", max_length=80, help_text="What will use it, e.g. deploy script."
    )
