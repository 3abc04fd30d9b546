"""Base WebSocket consumers shared by the apps.

Close codes: 4401 = not signed in, 4404 = not found (also another user's object: we never
confirm that it exists), 4400 = malformed request.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from doce import events

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


class AuthenticatedConsumer(AsyncJsonWebsocketConsumer):
    """Refuses anonymous connections; subclasses implement `authorize()`.

    `authorize()` returns True to accept; it runs after the user is known to be signed in.
    Returning False closes with 4404.
    """

    async def connect(self) -> None:
        self.user = self.scope.get("user")
        # Refusals accept first and then close: a handshake refused outright reaches the
        # browser as code 1006, and the page could not tell "not found" from "network down".
        if self.user is None or not self.user.is_authenticated:
            await self._refuse(CLOSE_UNAUTHENTICATED)
            return
        if not await self.authorize():
            await self._refuse(CLOSE_NOT_FOUND)
            return
        await self.accept()
        await self.on_accepted()

    async def _refuse(self, code: int) -> None:
        self.refused = True
        await self.accept()
        await self.close(code=code)

    async def authorize(self) -> bool:
        raise NotImplementedError

    async def on_accepted(self) -> None:
        """Hook run right after the handshake is accepted."""

    def query_param(self, name: str) -> str | None:
        query = parse_qs(self.scope.get("query_string", b"").decode(errors="replace"))
        values = query.get(name)
        return values[0] if values else None


class EventStreamConsumer(AuthenticatedConsumer):
    """Streams outbox events of `self.topics` to the client, resuming after `?after=<id>`.

    Each message is `Event.as_message()`: {id, topic, type, time, payload}. Without `after`,
    the stream starts at the newest event (the page rendered the current state). A
    channel-layer wake-up sends new events at once; a poll every
    `DOCE_EVENTS_POLL_SECONDS` covers wake-ups that cannot cross processes.
    """

    topics: list[str]

    async def on_accepted(self) -> None:
        after = self.query_param("after")
        if after is not None and after.isdigit():
            self.cursor = int(after)
        else:
            self.cursor = await database_sync_to_async(events.last_event_id)(self.topics)
        self.wakeup = asyncio.Event()
        for topic in self.topics:
            await self.channel_layer.group_add(events.group_name(topic), self.channel_name)
        self.pump_task = asyncio.create_task(self._pump())

    async def disconnect(self, code: int) -> None:
        task = getattr(self, "pump_task", None)
        if task is not None:
            task.cancel()
            for topic in self.topics:
                await self.channel_layer.group_discard(events.group_name(topic), self.channel_name)

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
                await self.send_json(event.as_message())
                self.cursor = event.id
            if len(batch) < 200:
                return
