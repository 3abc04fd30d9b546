"""WebSocket consumers of the projects app.

`ChatConsumer` at `ws/projects/<id>/chat/`: the live chat of one project.

Connect: anonymous → closed with 4401; another user's (or no) project → closed with 4404,
exactly like a missing one. Then it sends `chat.history` (`payload.events`: the conversation
so far, in the same shapes as live events), relays the project's agent events as they come
(one upstream connection per project per web process, see `doce.opencode.relay`), and sends
`chat.keepalive` every `DOCE_CHAT_KEEPALIVE_SECONDS`.

Client → server messages (JSON objects, validated with pydantic):

- `{"type": "prompt", "text": str, "model"?: "provider/model"}`
- `{"type": "abort"}`
- `{"type": "permission.reply", "requestId": str, "reply": "once"|"always"|"reject"}`
- `{"type": "question.reply", "requestId": str, "answers": [[str, ...], ...]}`
- `{"type": "question.reject", "requestId": str}`

Each is answered with `chat.ack {action}` when the agent took it, `chat.error {code, message}`
for a bad message or when there is no agent session yet, and `chat.diagnostic {diagnostic}`
when the agent failed. The socket is never dropped for a bad message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Annotated, Any, Literal

import structlog
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http import Http404
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from doce.opencode.agents import AgentTarget, agent_target
from doce.opencode.client import async_client_for
from doce.opencode.errors import OpencodeError, make_diagnostic
from doce.opencode.normalize import envelope
from doce.opencode.relay import MAX_QUEUE, relay_hub
from projects import services
from projects.models import Project, get_project_for_user

log = structlog.get_logger("projects.chat")

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
MAX_MESSAGE_BYTES = 256 * 1024
MAX_PROMPT_CHARS = 100_000

RequestId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{1,100}$")]
Model = Annotated[str, StringConstraints(pattern=r"^[^/\s]+/\S+$", max_length=200)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromptMessage(_Message):
    type: Literal["prompt"]
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = Field(
        max_length=MAX_PROMPT_CHARS
    )
    model: Model | None = None


class AbortMessage(_Message):
    type: Literal["abort"]


class PermissionReplyMessage(_Message):
    type: Literal["permission.reply"]
    requestId: RequestId
    reply: Literal["once", "always", "reject"]


class QuestionReplyMessage(_Message):
    type: Literal["question.reply"]
    requestId: RequestId
    answers: list[list[Annotated[str, StringConstraints(max_length=2000)]]] = Field(max_length=50)


class QuestionRejectMessage(_Message):
    type: Literal["question.reject"]
    requestId: RequestId


ClientMessage = Annotated[
    PromptMessage
    | AbortMessage
    | PermissionReplyMessage
    | QuestionReplyMessage
    | QuestionRejectMessage,
    Field(discriminator="type"),
]
_client_message = TypeAdapter(ClientMessage)


@database_sync_to_async
def _project_for(user, project_id: str) -> Project:
    return get_project_for_user(user, project_id)


@database_sync_to_async
def _reload(project_id: str) -> Project | None:
    return Project.objects.filter(pk=project_id).first()


async def resolve_agent_target(project_id: str) -> AgentTarget | None:
    """The current `AgentTarget` of `project_id` read from the database (None: no agent)."""
    project = await _reload(project_id)
    return None if project is None else agent_target(project)


class ChatConsumer(AsyncWebsocketConsumer):
    """The chat WebSocket of one project (see the module doc for the protocol)."""

    project_id: str = ""
    queue: asyncio.Queue | None = None
    _tasks: list[asyncio.Task]

    async def connect(self) -> None:
        self._tasks = []
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        try:
            project = await _project_for(user, self.scope["url_route"]["kwargs"]["project_id"])
        except Http404:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.project_id = project.id
        structlog.contextvars.bind_contextvars(project_id=project.id, user_id=user.pk)
        self.queue = asyncio.Queue(maxsize=MAX_QUEUE)
        history = relay_hub().join(project.id, self._resolve, self.queue)
        # Without an agent yet (the project is starting or stopped) nothing is said here: the
        # workspace shows the project's state, and the relay connects once the agent answers.
        await self._send_event("chat.history", {"events": history})
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._pump()), loop.create_task(self._keepalive())]

    async def disconnect(self, code: int) -> None:
        for task in getattr(self, "_tasks", []):
            task.cancel()
        if self.queue is not None:
            relay_hub().leave(self.project_id, self.queue)
            self.queue = None

    async def _resolve(self) -> AgentTarget | None:
        return await resolve_agent_target(self.project_id)

    async def _pump(self) -> None:
        """Send every queued event; None means this viewer fell behind: close, it reloads."""
        assert self.queue is not None
        while True:
            text = await self.queue.get()
            if text is None:
                await self.close(code=4408)
                return
            await self.send(text_data=text)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(settings.DOCE_CHAT_KEEPALIVE_SECONDS)
            await self._send_event("chat.keepalive", {})

    # --- client messages ----------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        if not self.project_id:
            return
        message = await self._parse(text_data, bytes_data)
        if message is None:
            return
        project = await _reload(self.project_id)
        if (
            project is not None
            and isinstance(message, PromptMessage)
            and project.status != Project.Status.RUNNING
        ):
            # Not running (stopped, starting, failed): the queue starts it, then sends.
            await self._queue_prompt(project, message)
            return
        target = agent_target(project) if project is not None else None
        if project is None or target is None:
            await self._send_diagnostic(
                make_diagnostic(
                    "runtime_unreachable",
                    "The project's agent is not running; start the project and try again.",
                    retryable=True,
                )
            )
            return
        needs_session = isinstance(message, PromptMessage | AbortMessage)
        if needs_session and not target.session_id:
            await self._send_error(
                "no_session",
                "The agent has no session yet; wait until the project has finished starting.",
            )
            return
        client = async_client_for(target.base_url, target.password)
        try:
            await self._perform(client, target, message, project)
        except OpencodeError as exc:
            log.info("chat action failed", action=message.type, error=str(exc))
            await self._send_diagnostic(exc.diagnostic)
            return
        await self._send_event("chat.ack", {"action": message.type})

    async def _parse(self, text_data: str | None, bytes_data: bytes | None) -> Any:
        raw = text_data if text_data is not None else (bytes_data or b"").decode("utf-8", "replace")
        if len(raw.encode()) > MAX_MESSAGE_BYTES:
            await self._send_error("invalid_message", "The message is too large.")
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            await self._send_error("invalid_message", "The message is not valid JSON.")
            return None
        try:
            return _client_message.validate_python(data)
        except ValidationError as exc:
            problems = [
                {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]}
                for err in exc.errors(include_url=False, include_input=False)
            ][:10]
            await self._send_error(
                "invalid_message", "The message is not one the chat understands.", problems
            )
            return None

    async def _queue_prompt(self, project: Project, message: PromptMessage) -> None:
        try:
            await database_sync_to_async(services.send_prompt)(
                project, message.text, model=message.model
            )
        except services.ProjectActionError as exc:
            await self._send_error("rejected", str(exc))
            return
        await self._send_event("chat.ack", {"action": "prompt", "queued": True})

    async def _perform(self, client, target: AgentTarget, message: Any, project: Project) -> None:
        if isinstance(message, PromptMessage):
            since_ms = int(time.time() * 1000)
            await client.prompt_async(
                target.session_id, message.text, model=message.model or project.model or None
            )
            # Completion is tracked server-side, whether or not this browser stays.
            await database_sync_to_async(services.record_prompt_sent)(project, since_ms=since_ms)
        elif isinstance(message, AbortMessage):
            await client.abort(target.session_id)
        elif isinstance(message, PermissionReplyMessage):
            await client.reply_permission(message.requestId, message.reply)
        elif isinstance(message, QuestionReplyMessage):
            await client.reply_question(message.requestId, message.answers)
        elif isinstance(message, QuestionRejectMessage):
            await client.reject_question(message.requestId)

    # --- sending ------------------------------------------------------------------------

    async def _send_event(self, kind: str, payload: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):  # the socket may be closing
            await self.send(
                text_data=json.dumps(
                    envelope(kind, self.project_id, None, payload), separators=(",", ":")
                )
            )

    async def _send_error(self, code: str, message: str, problems: list | None = None) -> None:
        payload: dict[str, Any] = {"code": code, "message": message}
        if problems:
            payload["problems"] = problems
        await self._send_event("chat.error", payload)

    async def _send_diagnostic(self, diagnostic) -> None:
        await self._send_event("chat.diagnostic", {"diagnostic": diagnostic.model_dump()})
