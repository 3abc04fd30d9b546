"""The agent's OpenCode configuration (`opencode.json` of a project's stack).

`opencode_provider_config(user)` turns the user's provider credentials (accounts) into
OpenCode's `provider` block; `opencode_config(model, provider_config)` is the whole file
that `projects.runtime.render_stack` writes into the stack, mode 0600.

Reference: https://opencode.ai/docs/config/ and https://opencode.ai/docs/providers/
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from accounts.models import ProviderCredential, ProviderKind

OPENCODE_SCHEMA = "https://opencode.ai/config.json"
# Loopback addresses as a user types them mean "this machine"; inside an agent container they
# would mean the container itself, so agent configs address the host by this name instead.
CONTAINER_HOST_ALIAS = "host.docker.internal"
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"}  # noqa: S104


def container_reachable_url(url: str) -> str:
    """Rewrite a loopback base URL (http://localhost:11434/v1) to address the Docker host."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host not in _LOOPBACK_HOSTS and f"[{host}]" not in _LOOPBACK_HOSTS:
        return url
    netloc = CONTAINER_HOST_ALIAS + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def opencode_provider_config(user) -> dict:
    """The `provider` block of an agent's `opencode.json` with this user's credentials.

    Shape (OpenCode config, https://opencode.ai/docs/providers/):
    `{<provider_id>: {"options": {"apiKey": ...}}}` for hosted providers, and for
    OpenAI-compatible endpoints `{<provider_id>: {"npm": "@ai-sdk/openai-compatible",
    "name": ..., "options": {"baseURL": ..., "apiKey": ...}, "models": {<name>: {"name": ...}}}}`.
    Contains secrets: write it only into that user's agent containers (files mode 0600).
    """
    block: dict[str, dict] = {}
    for credential in ProviderCredential.objects.filter(user=user):
        options: dict[str, str] = {}
        if credential.api_key:
            options["apiKey"] = credential.api_key
        entry: dict = {"options": options}
        if credential.kind == ProviderKind.OPENAI_COMPATIBLE:
            options["baseURL"] = container_reachable_url(credential.base_url)
            # The SDK wants some key even when a local server ignores it.
            options.setdefault("apiKey", "not-needed")
            entry["npm"] = "@ai-sdk/openai-compatible"
            entry["name"] = credential.display_name
        if credential.model_names:
            entry["models"] = {name: {"name": name} for name in credential.model_names}
        block[credential.provider_id] = entry
    return block


def opencode_config(model: str, provider_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The agent's `opencode.json`: `model` ("provider/model", left out when empty), the
    `provider` block (see `opencode_provider_config`), no auto-update, no sharing."""
    config: dict[str, Any] = {"$schema": OPENCODE_SCHEMA, "autoupdate": False, "share": "disabled"}
    if model:
        config["model"] = model
    if provider_config:
        config["provider"] = dict(provider_config)
    return config
