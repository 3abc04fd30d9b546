"""The agent's live event stream: `GET /event`, kept open across failures.

`EventStream(target_provider).items()` is an async iterator of `StreamItem`s:

- `StreamItem("connected")` after every (re)connection: the caller catches up from the
  session's messages, because the stream has no resumable ids;
- `StreamItem("event", event=<dict>)` for each upstream event (`{"type", "properties"}`),
  heartbeats included (they only feed liveness);
- `StreamItem("disconnected", diagnostic=<Diagnostic>)` when a connection fails or ends.

It reconnects forever (until the iterator is closed) with full-jitter exponential backoff
(0.5 s doubling, capped at 10 s); a watchdog drops a connection that sent no byte for
`DOCE_OPENCODE_STREAM_WATCHDOG_SECONDS` (30 s; the server sends a heartbeat about every 10 s).
`target_provider` is awaited before each connection, so a restarted agent's new address or
password is picked up; it returns None while the agent has no address (then it waits).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import structlog
from django.conf import settings

from doce.opencode.agents import AgentTarget
from doce.opencode.client import USERNAME
from doce.opencode.errors import Diagnostic, diagnostic_for_status, diagnostic_for_transport
from doce.opencode.sse import SSEParser

log = structlog.get_logger("doce.opencode.stream")

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 10.0
CONNECT_SECONDS = 10.0


@dataclass
class StreamItem:
    kind: Literal["connected", "event", "disconnected"]
    event: dict[str, Any] | None = None
    diagnostic: Diagnostic | None = None


class _Stalled(Exception):
    pass


def backoff_delay(
    attempt: int, *, base: float = BACKOFF_BASE_SECONDS, cap: float = BACKOFF_CAP_SECONDS
) -> float:
    """Full-jitter backoff in seconds for reconnect `attempt` (0, 1, 2, …)."""
    return random.uniform(0, min(cap, base * (2**attempt)))  # noqa: S311 - jitter, not crypto


class EventStream:
    """One self-healing subscription to an agent's `/event` stream (see module doc)."""

    def __init__(
        self,
        target_provider: Callable[[], Awaitable[AgentTarget | None]],
        *,
        watchdog: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._target_provider = target_provider
        self.watchdog = float(watchdog or settings.DOCE_OPENCODE_STREAM_WATCHDOG_SECONDS)
        self._transport = transport
        self.connections = 0
        self.last_byte_at = 0.0

    async def items(self) -> AsyncIterator[StreamItem]:
        attempt = 0
        while True:
            target = await self._target_provider()
            if target is None:
                await asyncio.sleep(backoff_delay(attempt))
                attempt = min(attempt + 1, 10)
                continue
            got_bytes = False
            try:
                async for item in self._connect_once(target):
                    if item.kind == "event" or item.kind == "connected":
                        got_bytes = True
                    yield item
                diagnostic = None  # the server ended the stream cleanly
            except _Stalled:
                diagnostic = diagnostic_for_transport(
                    httpx.ReadTimeout("no bytes from the agent event stream"), (target.password,)
                )
            except httpx.HTTPError as exc:
                diagnostic = diagnostic_for_transport(exc, (target.password,))
            except _HTTPStatus as exc:
                diagnostic = exc.diagnostic
            log.info(
                "agent stream disconnected",
                base_url=target.base_url,
                reason=diagnostic.message if diagnostic else "closed by server",
            )
            yield StreamItem("disconnected", diagnostic=diagnostic)
            attempt = 0 if got_bytes else min(attempt + 1, 10)
            await asyncio.sleep(backoff_delay(attempt))

    async def _connect_once(self, target: AgentTarget) -> AsyncIterator[StreamItem]:
        loop = asyncio.get_running_loop()
        async with httpx.AsyncClient(
            auth=(USERNAME, target.password),
            timeout=httpx.Timeout(CONNECT_SECONDS, read=None),
            transport=self._transport,
        ) as http:
            request = http.build_request(
                "GET",
                f"{target.base_url.rstrip('/')}/event",
                headers={"Accept": "text/event-stream", "Cache-Control": "no-cache"},
            )
            try:
                # A starting server may accept the connection and answer much later.
                response = await asyncio.wait_for(http.send(request, stream=True), CONNECT_SECONDS)
            except TimeoutError:
                raise _Stalled() from None
            try:
                if response.status_code != 200:
                    raise _HTTPStatus(
                        diagnostic_for_status(response.status_code, "", (target.password,))
                    )
                self.connections += 1
                self.last_byte_at = loop.time()
                yield StreamItem("connected")
                parser = SSEParser()
                chunks = response.aiter_text()
                while True:
                    try:
                        chunk = await asyncio.wait_for(anext(chunks), self.watchdog)
                    except StopAsyncIteration:
                        return
                    except TimeoutError:
                        raise _Stalled() from None
                    self.last_byte_at = loop.time()
                    for sse in parser.feed(chunk):
                        event = _decode(sse.data)
                        if event is not None:
                            yield StreamItem("event", event=event)
                    # Buffered data makes reads return at once; let viewers and other
                    # projects run between chunks even under a flood.
                    await asyncio.sleep(0)
            finally:
                await response.aclose()


class _HTTPStatus(Exception):
    def __init__(self, diagnostic: Diagnostic) -> None:
        self.diagnostic = diagnostic


def _decode(data: str) -> dict[str, Any] | None:
    try:
        event = json.loads(data)
    except ValueError:
        log.debug("agent stream sent a non-JSON event", size=len(data))
        return None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return None
    return event
