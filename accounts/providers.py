"""How doce talks to model providers from its own host: auth headers per provider kind,
errors in each provider's own format, the address policy's inputs, and the Settings checks
("Test connection", "Fetch models").

The model gateway (`gateway.proxy`) and Settings both use these, so a provider is called the
same way whoever calls it. Keys are read from the credential only here and in the gateway,
inside one request, and never logged.

References: OpenAI API authentication (`Authorization: Bearer`), Anthropic API versioning
(`x-api-key`, `anthropic-version: 2023-06-01`), OpenAI error object
(`{"error": {"message", "type", "code"}}`), Anthropic errors
(`{"type": "error", "error": {"type", "message"}}`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from accounts.models import ProviderCredential, ProviderKind
from doce.addresses import AddressRefused, ResolutionFailed, resolve_allowed
from doce.redact import redact_text

ANTHROPIC_VERSION = "2023-06-01"
# Request headers that carry the agent's gateway token (or any caller credential): never
# forwarded upstream; the provider's own auth header replaces them.
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "proxy-authorization"})
# Connection-level headers (RFC 9110 §7.6.1) and ones the gateway sets itself.
HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
        "host",
        "content-length",
        "accept-encoding",
        "cookie",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
    }
)
TEST_TIMEOUT_SECONDS = 4.5


def is_anthropic(kind: str) -> bool:
    """True for providers speaking Anthropic's API conventions."""
    return kind == ProviderKind.ANTHROPIC


def auth_headers(kind: str, api_key: str) -> dict[str, str]:
    """The provider's own authentication headers for `api_key` (none when the key is empty:
    local servers often need none). Anthropic: `x-api-key` + `anthropic-version`; every other
    kind (OpenAI, OpenRouter, OpenAI-compatible): `Authorization: Bearer`."""
    if is_anthropic(kind):
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        return headers
    return {"authorization": f"Bearer {api_key}"} if api_key else {}


def upstream_request_headers(
    kind: str, api_key: str, incoming: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Headers to send upstream: the agent's headers without its credentials and without
    connection-level ones, plus the provider's auth headers. A client `anthropic-version`
    is kept (newer SDKs choose their own); `accept-encoding: identity` so the stream is
    relayed (and metered) byte for byte."""
    own = auth_headers(kind, api_key)
    kept = [
        (name, value)
        for name, value in incoming
        if name.lower() not in CREDENTIAL_HEADERS and name.lower() not in HOP_HEADERS
    ]
    present = {name.lower() for name, _ in kept}
    out = kept + [(name, value) for name, value in own.items() if name not in present]
    out.append(("accept-encoding", "identity"))
    return out


def error_body(kind: str, status: int, message: str, code: str) -> bytes:
    """A JSON error in the provider's own format, so the agent's SDK reports `message`.

    `code` is a short machine word (e.g. `provider_unreachable`, `budget_exceeded`).
    """
    if is_anthropic(kind):
        kinds = {401: "authentication_error", 403: "permission_error", 404: "not_found_error"}
        payload: dict = {
            "type": "error",
            "error": {"type": kinds.get(status, "invalid_request_error"), "message": message},
        }
    else:
        payload = {"error": {"message": message, "type": code, "code": code, "param": None}}
    return json.dumps(payload).encode()


def allow_private_for(credential: ProviderCredential, owner) -> bool:
    """Whether this provider may be called at loopback/private addresses for `owner`:
    instance providers and staff always, other users only with DOCE_GATEWAY_ALLOW_PRIVATE."""
    return (
        credential.is_instance
        or bool(getattr(owner, "is_staff", False))
        or settings.DOCE_GATEWAY_ALLOW_PRIVATE
    )


def pinned(url: str, address: str) -> str:
    """`url` with its host replaced by the checked `address` (IPv6 in brackets)."""
    parts = urlsplit(url)
    host = f"[{address}]" if ":" in address else address
    netloc = host + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def default_port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


# --- Settings checks ------------------------------------------------------------------------


@dataclass
class ConnectionResult:
    """The outcome of "Test connection" or "Fetch models", in plain words.

    `ok`: the provider answered 2xx; `summary`: one sentence naming the provider, its URL and
    the upstream status or network error; `models`: model ids the server listed; `tools`:
    per model, whether the server says it supports tool calls (only models it says so of).
    """

    ok: bool
    summary: str
    status: int | None = None
    elapsed_ms: int = 0
    models: list[str] = field(default_factory=list)
    tools: dict[str, bool] = field(default_factory=dict)


def _name(credential: ProviderCredential) -> str:
    return f"{credential.display_name} ({credential.upstream_base_url or 'no URL'})"


def check_provider(credential: ProviderCredential, owner) -> ConnectionResult:
    """Call `GET <base URL>/models` from the doce host with the provider's key: the cheapest
    authenticated call every supported kind has. Never raises for network or policy
    failures (they become the summary); redirects are not followed; ≤ ~5 s."""
    started = time.monotonic()
    base = credential.upstream_base_url
    if not base:
        return ConnectionResult(False, f"{_name(credential)} has no base URL.")
    url = base + "/models"
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        resolved = resolve_allowed(
            host, default_port(url), allow_private=allow_private_for(credential, owner)
        )
    except (AddressRefused, ResolutionFailed) as exc:
        return ConnectionResult(False, f"{_name(credential)}: {exc.reason}.")
    headers = dict(auth_headers(credential.kind, credential.api_key))
    headers["host"] = parts.netloc.rpartition("@")[2]
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    try:
        with httpx.Client(timeout=TEST_TIMEOUT_SECONDS, follow_redirects=False) as client:
            response = client.get(
                pinned(url, resolved.address), headers=headers, extensions=extensions
            )
    except httpx.TimeoutException:
        return ConnectionResult(
            False,
            f"{_name(credential)} did not answer within {TEST_TIMEOUT_SECONDS:g} s.",
            elapsed_ms=int((time.monotonic() - started) * 1000),
        )
    except httpx.HTTPError as exc:
        reason = redact_text(str(exc) or exc.__class__.__name__, (credential.api_key,))
        return ConnectionResult(
            False,
            f"{_name(credential)} is unreachable: {reason}.",
            elapsed_ms=int((time.monotonic() - started) * 1000),
        )
    elapsed = int((time.monotonic() - started) * 1000)
    status = response.status_code
    if 300 <= status < 400:
        return ConnectionResult(
            False,
            f"{_name(credential)} answered with a redirect (HTTP {status}); doce does not "
            "follow redirects: use the final URL.",
            status,
            elapsed,
        )
    if status >= 400:
        hint = {401: "the key was refused", 403: "the key is not allowed", 404: "no such path"}
        return ConnectionResult(
            False,
            f"{_name(credential)} answered HTTP {status}"
            + (f" ({hint[status]})" if status in hint else "")
            + ".",
            status,
            elapsed,
        )
    models, tools = parse_model_list(response)
    return ConnectionResult(
        True,
        f"{_name(credential)} answered HTTP {status} in {elapsed} ms"
        + (f" and lists {len(models)} model(s)." if models else "."),
        status,
        elapsed,
        models,
        tools,
    )


def parse_model_list(response: httpx.Response) -> tuple[list[str], dict[str, bool]]:
    """Model ids and tool-call support from an OpenAI-style `{"data": [{"id": ...}]}` list
    (OpenRouter's `supported_parameters`, LM Studio's `capabilities` are read when given)."""
    try:
        data = response.json().get("data")
    except (ValueError, AttributeError):
        return [], {}
    if not isinstance(data, list):
        return [], {}
    models: list[str] = []
    tools: dict[str, bool] = {}
    for entry in data[:500]:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue
        model_id = entry["id"][:120]
        models.append(model_id)
        params = entry.get("supported_parameters") or entry.get("capabilities")
        if isinstance(params, list):
            tools[model_id] = "tools" in params or "tool_use" in params
    return models, tools
