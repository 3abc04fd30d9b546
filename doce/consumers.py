"""The one WebSocket base of doce: authentication, authorization, limits and close codes.

Every consumer derives from `DoceConsumer` (or `EventStreamConsumer`). The handshake checks,
in order: the origin (`doce.origins`, in `doce.asgi`, before any consumer runs: a foreign
origin's handshake is refused outright), the session (anonymous → 4401), then the
consumer's `authorize()` (False → 4404). Refusals accept first and then close, so the
browser sees the code: a handshake refused outright reaches a page as 1006, and it could not
tell "not found" from "network down".

Close codes (the browser helper `doce.socket` in `static/js/doce.js` acts on them):

| code | meaning | the browser |
|---|---|---|
| 1009 | a message over `DOCE_WS_MAX_MESSAGE_BYTES` (RFC 6455 "message too big") | reconnects |
| 4400 | a malformed query parameter (`?after=`, `?offset=`) | stops |
| 4401 | not signed in, or signed out (logout, session ended) | stops: sign in again |
| 4404 | no such route, or no such object (also another user's: never confirmed to exist) | stops |
| 4408 | the client fell too far behind a stream; reconnect to resync | reconnects |
| 4409 | the account changed (password, deactivation): re-check the session | reconnects |

A malformed client message (binary, not JSON, too deeply nested, a number too long to
convert, an unknown type) never closes the socket: it is answered with an error message
(`error_message()`; `{"type": "error", "code", "message"}` unless a consumer has its own
protocol) and nothing is logged above INFO.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Any
from urllib.parse import parse_qs

import structlog
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.security.websocket import OriginValidator
from django.conf import settings

from doce import events
from doce.origins import is_doce_origin

log = structlog.get_logger("doce.consumers")

CLOSE_TOO_BIG = 1009
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_FELL_BEHIND = 4408
CLOSE_REAUTHENTICATE = 4409

# Cursors (`?after=`, `?offset=`) fit a signed 64-bit column: a larger one would fail in the
# database (Postgres bigint) instead of being refused here.
MAX_CURSOR = 2**63 - 1
_CURSOR = re.compile(r"[0-9]{1,19}")


class DoceOriginValidator(OriginValidator):
    """ASGI middleware for WebSocket handshakes: anything but doce's own origin
    (`doce.origins.is_doce_origin`), or no `Origin` header, is refused before a consumer runs
    (the browser sees 1006; a page of another origin has no business knowing more)."""

    def __init__(self, application) -> None:
        super().__init__(application, [])

    def valid_origin(self, parsed_origin) -> bool:
        return parsed_origin is not None and is_doce_origin(parsed_origin.geturl())


def user_group(user_id: int) -> str:
    """Channel-layer group of every socket signed in as user `user_id` (see `end_sessions`)."""
    return f"doce.user.{user_id}"


class BadQuery(ValueError):
    """A query parameter is malformed; the consumer closes with 4400."""


class NotJson(ValueError):
    """A client message is not a JSON document doce can read; `str()` says why."""


def parse_json(text: str) -> Any:
    """Decode a client message. Raises `NotJson` for anything `json.loads` refuses,
    including nesting deeper than the interpreter's recursion limit and integers longer than
    Python's 4,300-digit conversion limit (both otherwise escape as non-ValueErrors or
    tracebacks)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise NotJson("The message is nested too deeply.") from None
    except json.JSONDecodeError as exc:
        raise NotJson(f"The message is not valid JSON ({exc.msg} at {exc.pos}).") from None
    except ValueError:  # an integer past the interpreter's digit limit
        raise NotJson("The message has a number too long to read.") from None


class DoceConsumer(AsyncWebsocketConsumer):
    """Base of every doce consumer. Subclasses implement `authorize()` and may override
    `on_accepted()`, `on_disconnect(code)` and `receive_message(data)`.

    After the handshake the consumer belongs to `user_group(user.pk)`, so logout, a password
    change or a deactivation (`accounts.signals`) closes it.
    """

    user: Any = None
    session_key: str | None = None
    accepted = False

    # --- handshake -------------------------------------------------------------------------

    async def connect(self) -> None:
        self.user = self.scope.get("user")
        if self.user is None or not self.user.is_authenticated:
            await self.refuse(CLOSE_UNAUTHENTICATED)
            return
        try:
            authorized = await self.authorize()
        except BadQuery:
            await self.refuse(CLOSE_BAD_REQUEST)
            return
        if not authorized:
            await self.refuse(CLOSE_NOT_FOUND)
            return
        session = self.scope.get("session")
        self.session_key = getattr(session, "session_key", None)
        await self.channel_layer.group_add(user_group(self.user.pk), self.channel_name)
        await self.accept()
        self.accepted = True
        try:
            await self.on_accepted()
        except BadQuery:
            await self.close(code=CLOSE_BAD_REQUEST)

    async def refuse(self, code: int) -> None:
        await self.accept()
        await self.close(code=code)

    async def authorize(self) -> bool:
        """True to accept the signed-in `self.user`; False closes with 4404. May raise
        `BadQuery` (closes with 4400)."""
        raise NotImplementedError

    async def on_accepted(self) -> None:
        """Hook run right after the handshake is accepted (may raise `BadQuery`)."""

    async def disconnect(self, code: int) -> None:
        if self.accepted:
            await self.channel_layer.group_discard(user_group(self.user.pk), self.channel_name)
            await self.on_disconnect(code)

    async def on_disconnect(self, code: int) -> None:
        """Hook run when an accepted socket closes: cancel tasks, leave groups."""

    # --- query parameters ------------------------------------------------------------------

    def query_param(self, name: str) -> str | None:
        query = parse_qs(self.scope.get("query_string", b"").decode(errors="replace"))
        values = query.get(name)
        return values[0] if values else None

    def cursor_param(self, name: str) -> int | None:
        """`?<name>=` as a non-negative integer below 2**63, None when absent; raises
        `BadQuery` for anything else (`²`, `-1`, `1e3`, a 5,000-digit number)."""
        raw = self.query_param(name)
        if raw is None:
            return None
        if not _CURSOR.fullmatch(raw) or int(raw) > MAX_CURSOR:
            raise BadQuery(name)
        return int(raw)

    # --- client messages -------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        if not self.accepted:
            return
        size = len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        if size > settings.DOCE_WS_MAX_MESSAGE_BYTES:
            # daphne enforces the same limit before the message reaches us; this covers
            # other ASGI servers and in-process tests.
            await self.close(code=CLOSE_TOO_BIG)
            return
        if text_data is None:
            await self.send_error("invalid_message", "Send JSON text messages, not binary.")
            return
        try:
            data = parse_json(text_data)
        except NotJson as exc:
            await self.send_error("invalid_message", str(exc))
            return
        await self.receive_message(data)

    async def receive_message(self, data: Any) -> None:
        """One decoded client message. The default: this socket takes no messages."""
        await self.send_error("unexpected_message", "This stream takes no messages.")

    async def send_json(self, content: Any, close: bool = False) -> None:
        await self.send(text_data=json.dumps(content, separators=(",", ":")), close=close)

    def error_message(self, code: str, message: str, problems: list | None = None) -> dict:
        """The error reply to a bad client message (consumers with a protocol override)."""
        payload: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if problems:
            payload["problems"] = problems
        return payload

    async def send_error(self, code: str, message: str, problems: list | None = None) -> None:
        log.info("socket.bad_message", code=code, path=self.scope.get("path"))
        with contextlib.suppress(Exception):  # the socket may be closing
            await self.send_json(self.error_message(code, message, problems))

    # --- session revocation (accounts.signals) --------------------------------------------

    async def session_ended(self, message: dict) -> None:
        """Logout of a session: its sockets close with 4401 (the browser stops)."""
        if message.get("session_key") == self.session_key:
            await self.close(code=CLOSE_UNAUTHENTICATED)

    async def account_changed(self, message: dict) -> None:
        """Password change or deactivation: every socket of the user closes with 4409; the
        browser reconnects and the handshake decides whether its session still holds."""
        await self.close(code=CLOSE_REAUTHENTICATE)


class NotFoundConsumer(DoceConsumer):
    """Any WebSocket path no app routes: accepted and closed with 4404 (never a 500)."""

    async def connect(self) -> None:
        await self.refuse(CLOSE_NOT_FOUND)


class EventStreamConsumer(DoceConsumer):
    """Streams outbox events of `self.topics` to the client, resuming after `?after=<id>`.

    Each message is `Event.as_message()`: {id, topic, type, time, payload}. Without `after`,
    the stream starts at the newest event (the page rendered the current state). A
    channel-layer wake-up sends new events at once; a poll every
    `DOCE_EVENTS_POLL_SECONDS` covers wake-ups that cannot cross processes. A malformed
    `after` closes with 4400.
    """

    topics: list[str]

    async def on_accepted(self) -> None:
        after = self.cursor_param("after")
        if after is not None:
            self.cursor = after
        else:
            self.cursor = await database_sync_to_async(events.last_event_id)(self.topics)
        self.wakeup = asyncio.Event()
        for topic in self.topics:
            await self.channel_layer.group_add(events.group_name(topic), self.channel_name)
        self.pump_task = asyncio.create_task(self._pump())

    async def on_disconnect(self, code: int) -> None:
        task = getattr(self, "pump_task", None)
        if task is not None:
            task.cancel()
            for topic in self.topics:
                await self.channel_layer.group_discard(events.group_name(topic), self.channel_name)

    def wants(self, message: dict) -> bool:
        """Whether to send this event of `self.topics` (all of them by default)."""
        return True

    async def events_wake(self, message: dict) -> None:
        self.wakeup.set()

    async def _pump(self) -> None:
        interval = settings.DOCE_EVENTS_POLL_SECONDS
        while True:
            await self._send_pending()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), timeout=interval)
            self.wakeup.clear()

    async def _send_pending(self) -> None:
        while True:
            batch = await database_sync_to_async(events.events_after)(self.topics, self.cursor)
            for event in batch:
                message = event.as_message()
                if self.wants(message):
                    await self.send_json(message)
                self.cursor = event.id
            if len(batch) < 200:
                return
