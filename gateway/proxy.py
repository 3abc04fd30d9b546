"""The model gateway: a streaming ASGI proxy from agents to model providers.

An agent's `opencode.json` names `http://host.docker.internal:<DOCE_GATEWAY_PORT>/gw/<provider
id>/v1` as each provider's base URL and its project's gateway token as the API key
(`projects.agent_config`). For each request `<METHOD> /gw/<provider id>/v1/<path>`:

1. the token (`Authorization: Bearer …` or `x-api-key: …`) is resolved to its project and
   owner (401 when unknown, revoked or the project is being deleted);
2. the provider id to the owner's own provider, else the instance provider of that id (404);
3. the owner's monthly token budget is checked (`accounts.usage`; 402 when spent);
4. the provider's host is resolved and every address checked against the address policy
   (`doce.addresses`, on every request: no DNS rebinding); the request goes to the checked
   address itself, with the original Host header and TLS server name;
5. the agent's credentials are replaced by the provider's key in its own convention
   (`accounts.providers.auth_headers`), and the request is sent from the doce host — so
   `http://127.0.0.1:11434/v1` (Ollama's default) works;
6. the answer streams back chunk by chunk as it arrives (SSE untouched, nothing buffered);
   redirects are not followed; a client that goes away cancels the upstream request;
7. one `accounts.UsageRecord` is written: tokens read from the stream as it passes
   (`gateway.metering`), time to first byte and total, status.

Failures of the gateway itself (no token, no provider, budget spent, address refused,
provider unreachable) answer in the provider's own error format (`error_body`) with a 4xx
status the agent's SDK does not retry, and a message naming the provider, its URL and what to
do, so the chat shows one clear card within seconds. The key is decrypted only inside the
request that uses it and is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import structlog
from channels.db import database_sync_to_async
from django.conf import settings

from accounts.models import ProviderCredential, UsageRecord, providers_for_agent
from accounts.providers import (
    HOP_HEADERS,
    allow_private_for,
    default_port,
    error_body,
    is_anthropic,
    pinned,
    upstream_request_headers,
)
from accounts.usage import budget_state
from doce.addresses import AddressRefused, ResolutionFailed, aresolve_allowed
from doce.redact import redact_text
from gateway.metering import UsageMeter
from projects.agent_config import project_for_gateway_token

log = structlog.get_logger("doce.gateway")

PATH_PREFIX = "/gw/"
_PATH = re.compile(r"^/gw/(?P<provider>[A-Za-z0-9_-]{1,40})/v1(?P<rest>/[^?#]*)?$")
MAX_BODY_BYTES = 32 * 1024 * 1024
# Gateway refusals use statuses the AI SDK does not retry (it retries 408, 409, 429, 5xx),
# so the user sees the reason once and at once instead of after minutes of retries.
STATUS_UPSTREAM_FAILED = 424
STATUS_BUDGET = 402
# Response headers not relayed to the agent (connection-level, or set by the server).
_RESPONSE_DROP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "te"}
    | {"trailer", "set-cookie", "server", "date"}
)
_RESPONSE_DROP_ALL = _RESPONSE_DROP | (HOP_HEADERS - {"content-length"})


@dataclass(frozen=True)
class Route:
    """Where one agent request goes: resolved from the token and provider id (in the DB)."""

    user_id: int
    project_id: str
    provider_id: str
    kind: str
    display_name: str
    base_url: str
    api_key: str
    instance_provider: bool
    allow_private: bool


class Refusal(Exception):
    """The gateway answers the agent itself: `status`, `code`, plain-words `message`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        user_id: int | None = None,
        project_id: str = "",
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.user_id = user_id
        self.project_id = project_id


def _settings_hint() -> str:
    return "Open Settings → Providers and use Test connection."


def _route(token: str, provider_id: str) -> Route:
    """Resolve token and provider (sync: runs in a DB thread). Raises `Refusal`."""
    project = project_for_gateway_token(token)
    if project is None:
        raise Refusal(
            401,
            "invalid_gateway_token",
            "doce gateway: this agent's token is not valid (the project was deleted or "
            "restarted). Restart the project.",
        )
    owner = project.owner
    credential: ProviderCredential | None = next(
        (c for c in providers_for_agent(owner) if c.provider_id == provider_id), None
    )
    if credential is None:
        raise Refusal(
            404,
            "unknown_provider",
            f"doce gateway: there is no provider '{provider_id}' for this project. Add it in "
            "Settings → Providers, or pick another model.",
            user_id=owner.pk,
            project_id=project.pk,
        )
    state = budget_state(owner)
    if state.exhausted:
        raise Refusal(
            STATUS_BUDGET,
            "budget_exceeded",
            f"doce gateway: your monthly model budget ({state.budget:,} tokens) is spent "
            f"({state.used:,} used). Ask an administrator to raise it, or wait for next month.",
            user_id=owner.pk,
            project_id=project.pk,
        )
    return Route(
        user_id=owner.pk,
        project_id=project.pk,
        provider_id=credential.provider_id,
        kind=credential.kind,
        display_name=credential.display_name,
        base_url=credential.upstream_base_url,
        api_key=credential.api_key,
        instance_provider=credential.is_instance,
        allow_private=allow_private_for(credential, owner),
    )


def _record(
    *,
    user_id: int,
    project_id: str,
    provider_id: str,
    instance_provider: bool,
    model: str,
    usage: tuple[int | None, int | None],
    ttfb_ms: int | None,
    total_ms: int,
    status: int,
    error: str,
) -> None:
    UsageRecord.objects.create(
        user_id=user_id,
        project_id=project_id,
        provider_id=provider_id,
        instance_provider=instance_provider,
        model=model[:200],
        input_tokens=usage[0],
        output_tokens=usage[1],
        ttfb_ms=ttfb_ms,
        total_ms=total_ms,
        status=status,
        error=error[:200],
    )


# --- Upstream clients -------------------------------------------------------------------------

# One client per (event loop, scheme, host name): connections go to checked IP addresses,
# and a pooled TLS connection must never be reused for another name (its SNI and certificate
# name the first one).
_clients: dict[tuple[int, str, str], httpx.AsyncClient] = {}


def _ssl_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    if settings.DOCE_EXTRA_CA_BUNDLE:
        context.load_verify_locations(settings.DOCE_EXTRA_CA_BUNDLE)
    return context


def _client(scheme: str, host: str) -> httpx.AsyncClient:
    key = (id(asyncio.get_running_loop()), scheme, host)
    client = _clients.get(key)
    if client is None:
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(
                connect=settings.DOCE_GATEWAY_CONNECT_TIMEOUT_SECONDS,
                read=settings.DOCE_GATEWAY_READ_TIMEOUT_SECONDS,
                write=60.0,
                pool=10.0,
            ),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=32),
            follow_redirects=False,
            verify=_ssl_context() if scheme == "https" else True,
            trust_env=False,
        )
        _clients[key] = client
    return client


# --- ASGI ------------------------------------------------------------------------------------


async def _respond(send, kind: str, status: int, code: str, message: str) -> None:
    body = error_body(kind, status, message, code)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-doce-gateway-error", code.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive) -> bytes | None:
    """The request body, or None when it is larger than `MAX_BODY_BYTES` or the client left."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _token(headers: list[tuple[str, str]]) -> str:
    for name, value in headers:
        lower = name.lower()
        if lower == "authorization" and value[:7].lower() == "bearer ":
            return value[7:].strip()
        if lower == "x-api-key":
            return value.strip()
    return ""


def _prepare_body(kind: str, rest: str, body: bytes) -> tuple[bytes, str, bool]:
    """(body to send, model name, streaming?) — an OpenAI-style streamed chat request gets
    `stream_options.include_usage` so its usage can be metered."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return body, "", False
    if not isinstance(data, dict):
        return body, "", False
    model = data.get("model") if isinstance(data.get("model"), str) else ""
    streaming = data.get("stream") is True
    if (
        streaming
        and not is_anthropic(kind)
        and rest.endswith("/chat/completions")
        and "stream_options" not in data
    ):
        data["stream_options"] = {"include_usage": True}
        body = json.dumps(data).encode()
    return body, model or "", streaming


async def application(scope, receive, send) -> None:
    """The gateway's ASGI app (HTTP only), for paths under `/gw/` (see the module docs)."""
    started = time.monotonic()
    match = _PATH.match(scope.get("path", ""))
    headers = [
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]
    ]
    if match is None:
        await _respond(
            send,
            "openai",
            404,
            "not_found",
            "doce gateway: use /gw/<provider id>/v1/<API path>.",
        )
        return
    provider_id, rest = match["provider"], match["rest"] or ""
    token = _token(headers)
    try:
        route = await database_sync_to_async(_route)(token, provider_id)
    except Refusal as refusal:
        # The provider's kind is unknown here: its id is the kind for hosted providers.
        await _respond(send, provider_id, refusal.status, refusal.code, refusal.message)
        log.info("gateway.refused", provider_id=provider_id, code=refusal.code)
        if refusal.user_id is not None:
            await database_sync_to_async(_record)(
                user_id=refusal.user_id,
                project_id=refusal.project_id,
                provider_id=provider_id,
                instance_provider=False,
                model="",
                usage=(None, None),
                ttfb_ms=None,
                total_ms=int((time.monotonic() - started) * 1000),
                status=refusal.status,
                error=refusal.code,
            )
        return
    await _forward(scope, receive, send, route, rest, headers, started)


async def _forward(scope, receive, send, route: Route, rest, headers, started: float) -> None:
    kind = route.kind
    name = f"{route.display_name} ({route.base_url})"
    body = await _read_body(receive)
    model = ""
    outcome: dict = {"status": 0, "error": "", "ttfb_ms": None, "usage": (None, None)}

    async def refuse(status: int, code: str, message: str) -> None:
        outcome.update(status=status, error=code)
        await _respond(send, kind, status, code, message)

    try:
        if body is None:
            await refuse(413, "request_too_large", "doce gateway: the request is too large.")
            return
        body, model, streaming = _prepare_body(kind, rest, body)
        target = route.base_url + rest
        query = scope.get("query_string", b"").decode("latin-1")
        if query:
            target += "?" + query
        parts = urlsplit(target)
        host = parts.hostname or ""
        try:
            resolved = await aresolve_allowed(
                host, default_port(target), allow_private=route.allow_private
            )
        except (AddressRefused, ResolutionFailed) as exc:
            await refuse(
                STATUS_UPSTREAM_FAILED,
                "provider_address_refused"
                if isinstance(exc, AddressRefused)
                else "provider_unresolvable",
                f"doce gateway: provider {name} cannot be used: {exc.reason}. " + _settings_hint(),
            )
            return
        out_headers = upstream_request_headers(kind, route.api_key, headers)
        out_headers.append(("host", parts.netloc.rpartition("@")[2]))
        client = _client(parts.scheme, host)
        request = client.build_request(
            scope["method"],
            pinned(target, resolved.address),
            headers=out_headers,
            content=body,
            extensions={"sni_hostname": host} if parts.scheme == "https" else {},
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.TimeoutException:
            await refuse(
                STATUS_UPSTREAM_FAILED,
                "provider_timeout",
                f"doce gateway: provider {name} did not answer in time. {_settings_hint()}",
            )
            return
        except httpx.HTTPError as exc:
            reason = redact_text(str(exc) or exc.__class__.__name__, (route.api_key,))
            await refuse(
                STATUS_UPSTREAM_FAILED,
                "provider_unreachable",
                f"doce gateway: provider {name} is unreachable ({reason}). "
                "Check that the server runs and the URL is right. " + _settings_hint(),
            )
            return
        outcome["ttfb_ms"] = int((time.monotonic() - started) * 1000)
        try:
            if 300 <= response.status_code < 400:
                await refuse(
                    STATUS_UPSTREAM_FAILED,
                    "provider_redirect",
                    f"doce gateway: provider {name} answered with a redirect (HTTP "
                    f"{response.status_code}); doce does not follow redirects. Use the final "
                    "URL in Settings → Providers.",
                )
                return
            outcome["status"] = response.status_code
            meter = UsageMeter(
                streaming=streaming
                or response.headers.get("content-type", "").startswith("text/event-stream")
            )
            if response.status_code >= 400:
                outcome["error"] = f"upstream HTTP {response.status_code}"
            await _relay(send, receive, response, meter, outcome)
            outcome["usage"] = meter.usage()
        finally:
            await response.aclose()
    finally:
        total_ms = int((time.monotonic() - started) * 1000)
        log.info(
            "gateway.request",
            project_id=route.project_id,
            provider_id=route.provider_id,
            model=model,
            status=outcome["status"],
            error=outcome["error"],
            ttfb_ms=outcome["ttfb_ms"],
            total_ms=total_ms,
        )
        await database_sync_to_async(_record)(
            user_id=route.user_id,
            project_id=route.project_id,
            provider_id=route.provider_id,
            instance_provider=route.instance_provider,
            model=model,
            usage=outcome["usage"],
            ttfb_ms=outcome["ttfb_ms"],
            total_ms=total_ms,
            status=outcome["status"] or 499,
            error=outcome["error"],
        )


async def _relay(send, receive, response: httpx.Response, meter: UsageMeter, outcome) -> None:
    """Stream `response` to the client as its bytes arrive; stop (and so close the upstream
    request) as soon as the client disconnects."""
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": [
                (name.lower(), value)
                for name, value in response.headers.raw
                if name.lower().decode("latin-1") not in _RESPONSE_DROP_ALL
            ],
        }
    )

    async def pump() -> None:
        async for chunk in response.aiter_raw():
            if chunk:
                meter.feed(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def client_gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    pumping = asyncio.ensure_future(pump())
    watching = asyncio.ensure_future(client_gone())
    try:
        done, _ = await asyncio.wait({pumping, watching}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        pumping.cancel()
        watching.cancel()
        raise
    if pumping in done:
        watching.cancel()
        exc = pumping.exception()
        if exc is not None:
            outcome["error"] = f"stream broke: {exc.__class__.__name__}"
            # The status line is out: end the body so the agent sees a truncated stream.
            with contextlib.suppress(Exception):  # the client may be gone too
                await send({"type": "http.response.body", "body": b"", "more_body": False})
    else:
        pumping.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):  # cancelled on purpose
            await pumping
        outcome["status"] = 499  # client closed request (the nginx convention)
        outcome["error"] = "client disconnected"


def on_gateway_listener(scope) -> bool:
    """True when the request came in on a gateway listener: `DOCE_GATEWAY_PORT`, or with
    several web processes a web slot's own gateway port (the edge fronts those)."""
    server = scope.get("server")
    if not server or len(server) < 2:
        return False
    return server[1] == settings.DOCE_GATEWAY_PORT or server[1] in _web_gateway_ports()


def _web_gateway_ports() -> frozenset[int]:
    return frozenset(slot.gateway_port for slot in settings.DOCE_WEB_SLOTS if slot.gateway_port)
