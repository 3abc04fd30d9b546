"""Fan one agent event stream per project out to this web process's chat viewers.

Each web process holds at most one upstream `/event` connection per viewed project
(`ProjectRelay`), opened with the first viewer and closed `DOCE_CHAT_RELAY_LINGER_SECONDS`
(30 s) after the last one leaves, but not while an answer streams (the relay holds its text,
which OpenCode stores only when a part ends). Events are normalized once, serialised to JSON
once, and put on every viewer's queue in-process. No channel-layer group is involved: with the Redis
layer and N web processes, a group would deliver every event N times.

    relay_hub().join(project_id, resolve, queue) -> list[envelope]   # snapshot, atomically
    relay_hub().leave(project_id, queue)

`resolve` is an async callable returning the project's current `AgentTarget` (or None); it is
awaited before each upstream connection, so a restarted agent is followed. After every
(re)connection the relay catches up from the session's stored messages (the stream has no
resumable ids), so nothing said while disconnected is lost and nothing is said twice. A
relay that opens while an answer is already streaming (the first viewer of a prompt the worker
sent, or after a web restart) cannot know the text streamed before it: those parts are sent
with `partial: true` until their full text arrives when they end.
A viewer whose queue is full (`MAX_QUEUE` events behind) gets None and must reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from django.conf import settings

from doce.opencode.agents import AgentTarget
from doce.opencode.client import AsyncOpencodeClient
from doce.opencode.errors import OpencodeError
from doce.opencode.normalize import Normalizer, envelope
from doce.opencode.stream import EventStream, StreamItem

log = structlog.get_logger("doce.opencode.relay")

MAX_QUEUE = 10_000
BUSY_STATUSES = frozenset({"busy", "retry"})
BUSY_RECHECK_SECONDS = 1.0
STOP_TIMEOUT_SECONDS = 5.0
Resolve = Callable[[], Awaitable[AgentTarget | None]]
ViewerQueue = asyncio.Queue  # of JSON text, or None = "you fell behind, reconnect"


class ProjectRelay:
    """One project's upstream connection, its normalizer, and its viewers' queues."""

    def __init__(
        self, hub: RelayHub, project_id: str, resolve: Resolve, *, stream_factory=None
    ) -> None:
        self.hub = hub
        self.project_id = project_id
        self.resolve = resolve
        self.viewers: set[ViewerQueue] = set()
        self.normalizer = Normalizer(project_id)
        self.target: AgentTarget | None = None
        self.dropped = 0
        self.connected = False
        self._outage_reported = False
        self._limits: dict[str, int] | None = None
        self._stream_factory = stream_factory or EventStream
        self._task: asyncio.Task | None = None
        self._linger: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"chat-relay-{self.project_id}"
        )

    async def stop(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                try:
                    await asyncio.wait_for(self._task, STOP_TIMEOUT_SECONDS)
                except TimeoutError:
                    log.warning("chat relay did not stop in time", project_id=self.project_id)

    def broadcast(self, events: list[dict[str, Any]]) -> None:
        """Serialise each event once and queue it for every viewer."""
        for event in events:
            text = json.dumps(event, separators=(",", ":"))
            for queue in list(self.viewers):
                try:
                    queue.put_nowait(text)
                except asyncio.QueueFull:
                    self.dropped += 1
                    self.viewers.discard(queue)
                    _force_put(queue, None)

    async def _target(self) -> AgentTarget | None:
        target = await self.resolve()
        if target is not None and target.session_id:
            if self.normalizer.session_id not in (None, target.session_id):
                # A new session (recreated after a reset): start the conversation afresh.
                self.normalizer = Normalizer(self.project_id, target.session_id)
                self.broadcast([self._env("chat.history", {"events": []})])
            elif self.normalizer.session_id is None:
                self.normalizer.session_id = target.session_id
        self.target = target
        return target

    async def _run(self) -> None:
        stream = self._stream_factory(self._target)
        async for item in stream.items():
            if item.kind == "connected":
                await self._connected()
            else:
                self._handle(item)

    def _handle(self, item: StreamItem) -> None:
        if item.kind == "event" and item.event is not None:
            events = self.normalizer.feed(item.event)
            if events:
                self.broadcast(events)
        elif item.kind == "disconnected":
            # Say it once per outage, not once per failed reconnect attempt.
            report = self.connected or not self._outage_reported
            self.connected = False
            if report:
                self._outage_reported = True
                payload: dict[str, Any] = {"state": "reconnecting"}
                if item.diagnostic is not None:
                    payload["diagnostic"] = item.diagnostic.model_dump()
                self.broadcast([self._env("chat.connection", payload)])

    async def _connected(self) -> None:
        self.connected = True
        self._outage_reported = False
        self.broadcast([self._env("chat.connection", {"state": "connected"})])
        await self.catch_up()

    async def catch_up(self) -> None:
        """Merge the session's stored messages and pending requests; broadcast what is new."""
        target = self.target
        session_id = self.normalizer.session_id or (target.session_id if target else "")
        if target is None or not session_id:
            return
        limit = settings.DOCE_CHAT_HISTORY_LIMIT
        try:
            async with AsyncOpencodeClient(target.base_url, target.password) as client:
                session = await client.get_session(session_id)
                messages = await client.messages(session_id, limit=limit)
                permissions = await client.pending_permissions()
                questions = await client.pending_questions()
                statuses = await client.session_statuses()
                limits = await self._context_limits(client)
        except OpencodeError as exc:
            log.info("chat catch-up failed", project_id=self.project_id, error=str(exc))
            self.broadcast(
                [self._env("chat.diagnostic", {"diagnostic": exc.diagnostic.model_dump()})]
            )
            return
        # The session first: its directory makes paths relative, its revert point is news.
        events = self.normalizer.feed(
            {"type": "session.updated", "properties": {"info": session.model_dump()}}
        )
        events += self.normalizer.set_context_limits(limits)
        events += self.normalizer.catch_up(messages)
        for request in permissions:
            if request.get("sessionID") == session_id and request.get("id") not in (
                self.normalizer.permissions
            ):
                events += self.normalizer.feed({"type": "permission.asked", "properties": request})
        for request in questions:
            if request.get("sessionID") == session_id and request.get("id") not in (
                self.normalizer.questions
            ):
                events += self.normalizer.feed({"type": "question.asked", "properties": request})
        # The stream does not repeat a status: say where the session stands now. Idle also
        # closes a message an agent crash left open.
        status = statuses.get(session_id)
        status_props = status.model_dump(exclude_none=True) if status else {"type": "idle"}
        events += self.normalizer.feed(
            {
                "type": "session.status",
                "properties": {"sessionID": session_id, "status": status_props},
            }
        )
        if events:
            self.broadcast(events)

    async def _context_limits(self, client: AsyncOpencodeClient) -> dict[str, int]:
        """`provider/model` → context window of the agent's connected providers' models
        (`GET /provider`), read once per relay: the providers change only with a restart."""
        if self._limits is None:
            try:
                providers = await client.providers()
            except OpencodeError:
                return {}  # usage is shown without its limit; asked again next time
            limits: dict[str, int] = {}
            for provider in providers.all:
                if provider.id not in providers.connected:
                    continue
                for model_id, model in provider.models.items():
                    context = (getattr(model, "limit", None) or {}).get("context")
                    if isinstance(context, int) and context > 0:
                        limits[f"{provider.id}/{model_id}"] = context
            self._limits = limits
        return self._limits

    def _env(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        return envelope(kind, self.project_id, self.normalizer.session_id, payload)

    def schedule_close(self, linger: float) -> None:
        if self._linger is not None:
            self._linger.cancel()
        loop = asyncio.get_running_loop()
        self._linger = loop.call_later(
            linger, lambda: loop.create_task(self.hub._close_if_unwatched(self.project_id))
        )

    def cancel_close(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None


def _force_put(queue: ViewerQueue, item: Any) -> None:
    with contextlib.suppress(asyncio.QueueEmpty):
        queue.get_nowait()  # make room for the "reconnect" marker
    with contextlib.suppress(asyncio.QueueFull):
        queue.put_nowait(item)


class RelayHub:
    """This process's (this event loop's) relays, by project id."""

    def __init__(self, *, linger: float | None = None, stream_factory=None) -> None:
        self.linger = settings.DOCE_CHAT_RELAY_LINGER_SECONDS if linger is None else linger
        self.relays: dict[str, ProjectRelay] = {}
        self._stream_factory = stream_factory

    def join(self, project_id: str, resolve: Resolve, queue: ViewerQueue) -> list[dict]:
        """Add a viewer's queue; start the relay if needed. Returns the conversation so far.

        Synchronous on purpose: the snapshot and the subscription happen without an await
        in between, so the viewer misses nothing and gets nothing twice.
        """
        relay = self.relays.get(project_id)
        if relay is None:
            relay = self.relays[project_id] = ProjectRelay(
                self, project_id, resolve, stream_factory=self._stream_factory
            )
            relay.start()
        relay.cancel_close()
        relay.viewers.add(queue)
        return relay.normalizer.snapshot()

    def leave(self, project_id: str, queue: ViewerQueue) -> None:
        """Remove a viewer; the last one out starts the linger timer."""
        relay = self.relays.get(project_id)
        if relay is None:
            return
        relay.viewers.discard(queue)
        if not relay.viewers:
            relay.schedule_close(self.linger)

    async def _close_if_unwatched(self, project_id: str) -> None:
        relay = self.relays.get(project_id)
        if relay is None or relay.viewers:
            return
        if relay.connected and relay.normalizer.status in BUSY_STATUSES:
            # An answer is streaming: keep its text, which OpenCode does not store until the
            # part ends, for a viewer who comes back before it finishes.
            relay.schedule_close(max(self.linger, BUSY_RECHECK_SECONDS))
            return
        self.relays.pop(project_id, None)
        await relay.stop()

    async def close_all(self) -> None:
        for project_id in list(self.relays):
            relay = self.relays.pop(project_id)
            await relay.stop()


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RelayHub] = weakref.WeakKeyDictionary()


def relay_hub() -> RelayHub:
    """The relay hub of the running event loop (one per web process under daphne)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = RelayHub()
    return hub


def set_relay_hub(hub: RelayHub) -> None:
    """Install `hub` for the running loop (tests and benchmarks use their own settings)."""
    _hubs[asyncio.get_running_loop()] = hub
