"""The agent's OpenCode configuration (`opencode.json` of a project's stack) and its
model-gateway token. The one renderer of the agent config: project creation, every start,
live provider changes (and a warm pool's claim) all come through here.

Agents never hold a provider key or a provider's address. `opencode_provider_config(project)`
issues the project a fresh gateway token and lists the owner's usable providers (their own
and the instance providers) with the gateway's base URL for each
(`http://host.docker.internal:<DOCE_GATEWAY_PORT>/gw/<provider id>/v1`) and the token as
`apiKey`; the gateway (`gateway.proxy`) adds the real key on the way out.
`opencode_config(model, provider_config)` is the whole file `projects.runtime.render_stack`
writes into the stack, mode 0600.

Reference: https://opencode.ai/docs/config/ and https://opencode.ai/docs/providers/
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from accounts.models import ProviderKind, providers_for_agent
from projects.models import Project

OPENCODE_SCHEMA = "https://opencode.ai/config.json"
# Inside an agent container the doce host is this name (the stack's `extra_hosts` maps it to
# the Docker bridge's gateway address, where the gateway listens).
CONTAINER_HOST_ALIAS = "host.docker.internal"
# Gateway tokens: this prefix + 43 url-safe characters (256 bits). `doce.redact` masks
# every `doce_…` token shape in logs and errors.
GATEWAY_TOKEN_PREFIX = "doce_gw_"  # noqa: S105 (a public prefix, not a secret)


def gateway_token_digest(token: str) -> str:
    """SHA-256 hex of a gateway token (what the database keeps)."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_gateway_token(project: Project) -> str:
    """Give `project` a new gateway token and return it; the previous one stops working.

    Only its digest is stored. Called whenever the agent's config is rendered (creation,
    every start, a live provider change, a warm pool's claim), so a restart rotates it.
    """
    token = GATEWAY_TOKEN_PREFIX + secrets.token_urlsafe(32)
    project.gateway_token_digest = gateway_token_digest(token)
    Project.objects.filter(pk=project.pk).update(gateway_token_digest=project.gateway_token_digest)
    return token


def revoke_gateway_token(project: Project) -> None:
    """Make the project's gateway token invalid at once (project deleted)."""
    project.gateway_token_digest = ""
    Project.objects.filter(pk=project.pk).update(gateway_token_digest="")


def project_for_gateway_token(token: str) -> Project | None:
    """The live project holding `token` (with its owner), or None: unknown, revoked,
    malformed, or the project is being deleted."""
    if not token.startswith(GATEWAY_TOKEN_PREFIX) or len(token) > 100:
        return None
    return (
        Project.objects.select_related("owner")
        .filter(gateway_token_digest=gateway_token_digest(token), owner__is_active=True)
        .exclude(status=Project.Status.DELETING)
        .first()
    )


def gateway_base_url(provider_id: str) -> str:
    """The base URL an agent uses for provider `provider_id`, through the gateway."""
    return f"http://{CONTAINER_HOST_ALIAS}:{settings.DOCE_GATEWAY_PORT}/gw/{provider_id}/v1"


def opencode_provider_config(project: Project) -> dict:
    """The `provider` block of the agent's `opencode.json`; issues a new gateway token.

    Shape (OpenCode config, https://opencode.ai/docs/providers/): per usable provider of the
    owner, `{<provider_id>: {"options": {"baseURL": <gateway URL>, "apiKey": <gateway
    token>}, "models": {<name>: {"name": ...}}}}`, plus `"npm":
    "@ai-sdk/openai-compatible"` and `"name"` for OpenAI-compatible endpoints. Holds no
    provider key and no provider address; the token is still a secret (files mode 0600).
    """
    token = issue_gateway_token(project)
    block: dict[str, dict] = {}
    for credential in providers_for_agent(project.owner):
        entry: dict = {
            "options": {"baseURL": gateway_base_url(credential.provider_id), "apiKey": token}
        }
        if credential.kind == ProviderKind.OPENAI_COMPATIBLE:
            entry["npm"] = "@ai-sdk/openai-compatible"
            entry["name"] = credential.display_name
            # Ask compatible servers for the usage chunk the gateway meters.
            entry["options"]["includeUsage"] = True
        if credential.model_names:
            entry["models"] = {
                name: _model_entry(name, credential) for name in credential.model_names
            }
        block[credential.provider_id] = entry
    return block


# What OpenCode needs to send images to a model it does not know (its own catalogue covers
# the hosted providers): without it, OpenCode 1.18 replaces an image with the text "ERROR:
# Cannot read … (this model does not support image input)".
IMAGE_MODEL = {"attachment": True, "modalities": {"input": ["text", "image"], "output": ["text"]}}


def _model_entry(name: str, credential) -> dict[str, Any]:
    """One model of the `models` block: its name, and for an OpenAI-compatible endpoint
    marked as taking images (`accepts_images`) the capabilities that let images through."""
    entry: dict[str, Any] = {"name": name}
    if credential.kind == ProviderKind.OPENAI_COMPATIBLE and credential.accepts_images:
        entry.update(IMAGE_MODEL)
    return entry


def providers_fingerprint(user) -> str:
    """A digest of what the agent config says about `user`'s usable providers (ids, kinds,
    models): a running agent whose rendered fingerprint differs needs a new config."""
    parts = [
        f"{c.provider_id}|{c.kind}|{c.display_name}|{','.join(c.model_names)}|{c.accepts_images}"
        for c in providers_for_agent(user)
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def opencode_config(model: str, provider_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The agent's `opencode.json`: `model` ("provider/model", left out when empty), the
    `provider` block (see `opencode_provider_config`), no auto-update, no sharing."""
    config: dict[str, Any] = {"$schema": OPENCODE_SCHEMA, "autoupdate": False, "share": "disabled"}
    if model:
        config["model"] = model
    if provider_config:
        config["provider"] = dict(provider_config)
    return config
