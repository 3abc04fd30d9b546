"""A typed HTTP client of one OpenCode agent server (sync for the worker, async for consumers).

    client = OpencodeClient("http://127.0.0.1:41234", password)          # worker, jobs
    session = client.create_session()
    client.prompt_async(session.id, "Make a bakery site", model="openrouter/x")

    client = AsyncOpencodeClient(base_url, password)                     # consumers
    messages = await client.messages(session_id, limit=200)

Both speak HTTP basic auth (user `opencode`, the project's `agent_password`). Every method
raises `OpencodeError` (with a classified, redacted `Diagnostic`) on a transport failure or an
HTTP error. Timeouts: `DOCE_OPENCODE_TIMEOUT_SECONDS` (30 s) for most calls,
`DOCE_OPENCODE_MESSAGE_TIMEOUT_SECONDS` (300 s) for reading a session's messages (a long
conversation is a large answer). `client_for()` / `async_client_for()` cache one client per
agent address; `close_clients(base_url)` closes them when the stack stops. Endpoints:
OpenCode's `/doc`.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from django.conf import settings
from pydantic import TypeAdapter

from doce.opencode.errors import (
    OpencodeError,
    clean,
    diagnostic_for_status,
    diagnostic_for_transport,
    make_diagnostic,
)
from doce.opencode.models import (
    Health,
    MessageWithParts,
    ProviderList,
    Session,
    SessionStatus,
)

USERNAME = "opencode"

_messages = TypeAdapter(list[MessageWithParts])
_sessions = TypeAdapter(list[Session])
_statuses = TypeAdapter(dict[str, SessionStatus])


@dataclass
class Call:
    """One API request: method, path, body, and how to parse the JSON answer."""

    method: str
    path: str
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    parse: Callable[[Any], Any] | None = None
    long: bool = False  # uses the long (message) timeout
    operation: str = ""


def _seg(value: str) -> str:
    """Quote one path segment, so an id can never add path segments."""
    return quote(str(value), safe="")


def split_model(model: str) -> dict[str, str]:
    """`"provider/model/with/slashes"` → `{"providerID": "provider", "modelID": "model/…"}`.

    Raises `ValueError` when there is no `/` or either side is empty.
    """
    provider, sep, model_id = model.partition("/")
    if not sep or not provider or not model_id:
        raise ValueError("a model is written provider/model")
    return {"providerID": provider, "modelID": model_id}


class _Endpoints:
    """The endpoints doce uses; each builds a `Call` and hands it to `_send`.

    In the sync client `_send` returns the parsed result; in the async client it returns an
    awaitable of it, so every method here is awaited there.
    """

    base_url: str

    def _send(self, call: Call) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def health(self):
        """`GET /doc` → `Health` (the OpenAPI `info`); the readiness probe."""
        return self._send(
            Call(
                "GET",
                "/doc",
                parse=lambda d: Health(**(d or {}).get("info", {})),
                operation="health",
            )
        )

    def create_session(self, *, title: str | None = None, permission: list[dict] | None = None):
        """`POST /session` → `Session`."""
        body: dict[str, Any] = {}
        if title:
            body["title"] = title
        if permission:
            body["permission"] = permission
        return self._send(
            Call(
                "POST",
                "/session",
                json=body,
                parse=Session.model_validate,
                operation="create session",
            )
        )

    def list_sessions(self):
        """`GET /session` → `list[Session]`."""
        return self._send(
            Call("GET", "/session", parse=_sessions.validate_python, operation="list sessions")
        )

    def get_session(self, session_id: str):
        """`GET /session/{id}` → `Session`; `OpencodeError.not_found` when it is gone."""
        return self._send(
            Call(
                "GET",
                f"/session/{_seg(session_id)}",
                parse=Session.model_validate,
                operation="get session",
            )
        )

    def delete_session(self, session_id: str):
        """`DELETE /session/{id}` → bool."""
        return self._send(
            Call("DELETE", f"/session/{_seg(session_id)}", parse=bool, operation="delete session")
        )

    def session_statuses(self):
        """`GET /session/status` → `{session_id: SessionStatus}`; idle sessions are absent."""
        return self._send(
            Call(
                "GET",
                "/session/status",
                parse=_statuses.validate_python,
                operation="session status",
            )
        )

    def prompt_async(
        self,
        session_id: str,
        text: str,
        *,
        model: str | None = None,
        parts: list[dict] | None = None,
        message_id: str | None = None,
    ):
        """`POST /session/{id}/prompt_async` (204): queue a user message; returns None.

        `model` is `provider/model`; `parts` are extra parts after the text part;
        `message_id` names the user message (`doce.opencode.ids.ascending_message_id`).
        Sending one id twice stores one message but runs the model twice: check
        `get_message` first. Raises `ValueError` for a malformed `model`.
        """
        body: dict[str, Any] = {"parts": [{"type": "text", "text": text}, *(parts or [])]}
        if model:
            body["model"] = split_model(model)
        if message_id:
            body["messageID"] = message_id
        return self._send(
            Call(
                "POST",
                f"/session/{_seg(session_id)}/prompt_async",
                json=body,
                operation="send prompt",
            )
        )

    def messages(self, session_id: str, *, limit: int | None = None):
        """`GET /session/{id}/message[?limit=N]` → `list[MessageWithParts]`, oldest first."""
        params = {"limit": int(limit)} if limit else {}
        return self._send(
            Call(
                "GET",
                f"/session/{_seg(session_id)}/message",
                params=params,
                parse=_messages.validate_python,
                long=True,
                operation="read messages",
            )
        )

    def get_message(self, session_id: str, message_id: str):
        """`GET /session/{id}/message/{messageID}` → `MessageWithParts`; an `OpencodeError`
        with `status_code` 404 when the session has no such message."""
        return self._send(
            Call(
                "GET",
                f"/session/{_seg(session_id)}/message/{_seg(message_id)}",
                parse=MessageWithParts.model_validate,
                operation="read message",
            )
        )

    def abort(self, session_id: str):
        """`POST /session/{id}/abort` → bool."""
        return self._send(
            Call("POST", f"/session/{_seg(session_id)}/abort", parse=bool, operation="abort")
        )

    def dispose_instance(self):
        """`POST /instance/dispose` → bool: the agent drops its loaded state and reads its
        config file again on the next request (providers, keys, models), without a process
        restart. Sessions are kept (they live on disk). Checked with OpenCode 1.18.33."""
        return self._send(Call("POST", "/instance/dispose", parse=bool, operation="reload config"))

    # Used by `projects.services.restore_to` / `unrestore` (restore to a message).
    def revert(self, session_id: str, message_id: str, part_id: str | None = None):
        """`POST /session/{id}/revert {messageID, partID?}` → `Session`."""
        body = {"messageID": message_id, **({"partID": part_id} if part_id else {})}
        return self._send(
            Call(
                "POST",
                f"/session/{_seg(session_id)}/revert",
                json=body,
                parse=Session.model_validate,
                operation="revert",
            )
        )

    def unrevert(self, session_id: str):
        """`POST /session/{id}/unrevert` → `Session`."""
        return self._send(
            Call(
                "POST",
                f"/session/{_seg(session_id)}/unrevert",
                parse=Session.model_validate,
                operation="unrevert",
            )
        )

    def summarize(self, session_id: str, model: str):
        """`POST /session/{id}/summarize {providerID, modelID}` → bool: compact the
        conversation (OpenCode replaces the history the model sees by a summary).
        Raises `ValueError` for a malformed `model` (`provider/model`)."""
        return self._send(
            Call(
                "POST",
                f"/session/{_seg(session_id)}/summarize",
                json=split_model(model),
                parse=bool,
                long=True,
                operation="compact",
            )
        )

    def reply_permission(self, request_id: str, reply: str, message: str | None = None):
        """`POST /permission/{id}/reply {reply: once|always|reject}` → bool."""
        body = {"reply": reply, **({"message": message} if message else {})}
        return self._send(
            Call(
                "POST",
                f"/permission/{_seg(request_id)}/reply",
                json=body,
                parse=bool,
                operation="reply permission",
            )
        )

    def reply_question(self, request_id: str, answers: list[list[str]]):
        """`POST /question/{id}/reply {answers}` (one list of labels per question) → bool."""
        return self._send(
            Call(
                "POST",
                f"/question/{_seg(request_id)}/reply",
                json={"answers": answers},
                parse=bool,
                operation="reply question",
            )
        )

    def reject_question(self, request_id: str):
        """`POST /question/{id}/reject` → bool."""
        return self._send(
            Call(
                "POST",
                f"/question/{_seg(request_id)}/reject",
                parse=bool,
                operation="reject question",
            )
        )

    def pending_permissions(self):
        """`GET /permission` → list of pending permission requests (dicts)."""
        return self._send(Call("GET", "/permission", parse=list, operation="list permissions"))

    def pending_questions(self):
        """`GET /question` → list of pending question requests (dicts)."""
        return self._send(Call("GET", "/question", parse=list, operation="list questions"))

    def providers(self):
        """`GET /provider` → `ProviderList`."""
        return self._send(
            Call("GET", "/provider", parse=ProviderList.model_validate, operation="list providers")
        )

    def config(self):
        """`GET /config` → the effective config (dict)."""
        return self._send(Call("GET", "/config", parse=dict, operation="read config"))


def _timeouts() -> tuple[httpx.Timeout, httpx.Timeout]:
    normal = float(settings.DOCE_OPENCODE_TIMEOUT_SECONDS)
    long = float(settings.DOCE_OPENCODE_MESSAGE_TIMEOUT_SECONDS)
    return httpx.Timeout(normal, connect=min(normal, 10.0)), httpx.Timeout(long, connect=10.0)


def _finish(call: Call, response: httpx.Response, secrets: tuple[str, ...]) -> Any:
    if response.status_code >= 400:
        raise OpencodeError(
            diagnostic_for_status(response.status_code, _error_detail(response), secrets),
            operation=call.operation,
        )
    if call.parse is None or response.status_code == 204 or not response.content:
        return None
    try:
        return call.parse(response.json())
    except ValueError as exc:  # JSON or pydantic validation
        raise OpencodeError(
            make_diagnostic(
                "unknown",
                f"The agent answered in an unexpected shape ({clean(str(exc)[:200], secrets)}).",
                retryable=False,
                secrets=secrets,
            ),
            operation=call.operation,
        ) from None


def _error_detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return ""
    if isinstance(data, dict):
        for key in ("message", "error"):
            value = data.get(key)
            if isinstance(value, str):
                return value
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return value["message"]
        inner = data.get("data")
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
    return ""


class OpencodeClient(_Endpoints):
    """Synchronous client (the worker's jobs). Close it with `close()` or use `with`."""

    def __init__(
        self,
        base_url: str,
        password: str,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._secrets = (password,)
        self._timeout, self._long_timeout = _timeouts()
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=(USERNAME, password),
            timeout=self._timeout,
            transport=transport,
        )

    def _send(self, call: Call) -> Any:
        try:
            response = self._http.request(
                call.method,
                call.path,
                json=call.json,
                params=call.params or None,
                timeout=self._long_timeout if call.long else self._timeout,
            )
        except httpx.HTTPError as exc:
            raise OpencodeError(
                diagnostic_for_transport(exc, self._secrets), operation=call.operation
            ) from None
        return _finish(call, response, self._secrets)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OpencodeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncOpencodeClient(_Endpoints):
    """Asynchronous client (consumers, the relay); every endpoint method is awaited."""

    def __init__(
        self,
        base_url: str,
        password: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._secrets = (password,)
        self._timeout, self._long_timeout = _timeouts()
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            auth=(USERNAME, password),
            timeout=self._timeout,
            transport=transport,
        )

    async def _send(self, call: Call) -> Any:
        try:
            response = await self._http.request(
                call.method,
                call.path,
                json=call.json,
                params=call.params or None,
                timeout=self._long_timeout if call.long else self._timeout,
            )
        except httpx.HTTPError as exc:
            raise OpencodeError(
                diagnostic_for_transport(exc, self._secrets), operation=call.operation
            ) from None
        return _finish(call, response, self._secrets)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncOpencodeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


# --- Clients cached per agent address ---------------------------------------------------------

_lock = threading.Lock()
_sync_clients: dict[tuple[str, str], OpencodeClient] = {}
# Async clients belong to the event loop that made them; a dead loop drops its clients.
_async_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str], AsyncOpencodeClient]
] = weakref.WeakKeyDictionary()


def client_for(base_url: str, password: str) -> OpencodeClient:
    """Return the cached sync client of the agent at `base_url` (made on first use)."""
    key = (base_url.rstrip("/"), password)
    with _lock:
        client = _sync_clients.get(key)
        if client is None:
            client = _sync_clients[key] = OpencodeClient(base_url, password)
        return client


def async_client_for(base_url: str, password: str) -> AsyncOpencodeClient:
    """Return the running loop's cached async client of the agent at `base_url`."""
    loop = asyncio.get_running_loop()
    key = (base_url.rstrip("/"), password)
    with _lock:
        per_loop = _async_clients.setdefault(loop, {})
        client = per_loop.get(key)
        if client is None:
            client = per_loop[key] = AsyncOpencodeClient(base_url, password)
        return client


def close_clients(base_url: str) -> int:
    """Close and forget every cached client of the agent at `base_url` (its stack stopped).

    Returns how many clients were closed. Async clients are closed on their own loop.
    """
    base = base_url.rstrip("/")
    closed = 0
    with _lock:
        for key in [k for k in _sync_clients if k[0] == base]:
            _sync_clients.pop(key).close()
            closed += 1
        for loop, per_loop in list(_async_clients.items()):
            for key in [k for k in per_loop if k[0] == base]:
                client = per_loop.pop(key)
                if loop.is_running() and not loop.is_closed():
                    asyncio.run_coroutine_threadsafe(client.aclose(), loop)
                closed += 1
    return closed
