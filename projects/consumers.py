"""WebSocket consumers of the projects app.

`ChatConsumer` at `ws/projects/<id>/chat/`: the live chat of one project.

Connect: through `doce.consumers.DoceConsumer` (anonymous → 4401; another user's, or no,
project → 4404, exactly like a missing one; the shared close codes are listed there). Then
it sends `chat.history` (`payload.events`: the conversation so far, in the same shapes as
live events), relays the project's agent events as they come (one upstream connection per
project per web process, see `doce.opencode.relay`), and sends `chat.keepalive` every
`DOCE_CHAT_KEEPALIVE_SECONDS`.

Client → server messages (JSON objects, validated with pydantic):

- `{"type": "prompt", "text": str, "model"?: "provider/model"}` — through
  `projects.services.send_prompt`, the same path and rules as the API's prompt endpoint
- `{"type": "abort"}`
- `{"type": "permission.reply", "requestId": str, "reply": "once"|"always"|"reject"}`
- `{"type": "question.reply", "requestId": str, "answers": [[str, ...], ...]}`
- `{"type": "question.reject", "requestId": str}`
- `{"type": "restore", "messageId": str}` / `{"type": "unrestore"}` — restore the
  conversation and files to a user message, or undo that (`services.restore_to`,
  `services.unrestore`; the chat sees it as `chat.session.revert`)
- `{"type": "compact"}` — compact the conversation (OpenCode's summarize, project's model)

Prompts with attachments do not fit a socket message: the chat posts them to the API
(`POST /api/projects/<id>/prompt`), the same `services.send_prompt` path.

Each is answered with `chat.ack {action}` when the agent took it (`queued: true` when a
prompt went through the queue), `chat.error {code, message}` for a malformed message
(`invalid_message`), one the project refuses (`rejected`, e.g. an unknown model or an
over-long prompt) or when there is no agent session yet, and `chat.diagnostic {diagnostic}`
when the agent failed. The socket is never dropped for a bad message (a message over
`DOCE_WS_MAX_MESSAGE_BYTES` closes it with 1009).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any, Literal

import structlog
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection
from django.http import Http404
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from doce.consumers import CLOSE_FELL_BEHIND, DoceConsumer
from doce.opencode.agents import AgentTarget, agent_target
from doce.opencode.client import async_client_for
from doce.opencode.errors import OpencodeError, make_diagnostic
from doce.opencode.normalize import envelope
from doce.opencode.relay import MAX_QUEUE, relay_hub
from projects import services
from projects.models import Project, get_project_for_user

log = structlog.get_logger("projects.chat")

RequestId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{1,100}$")]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromptMessage(_Message):
    # Only the shape is checked here; the text and the model are checked by
    # `services.send_prompt`, so the chat and the API apply the same rules.
    type: Literal["prompt"]
    text: str
    model: str | None = None


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


class RestoreMessage(_Message):
    type: Literal["restore"]
    messageId: Annotated[str, StringConstraints(pattern=r"^msg[A-Za-z0-9_]{1,100}$")]


class UnrestoreMessage(_Message):
    type: Literal["unrestore"]


class CompactMessage(_Message):
    type: Literal["compact"]


ClientMessage = Annotated[
    PromptMessage
    | AbortMessage
    | PermissionReplyMessage
    | QuestionReplyMessage
    | QuestionRejectMessage
    | RestoreMessage
    | UnrestoreMessage
    | CompactMessage,
    Field(discriminator="type"),
]
_client_message = TypeAdapter(ClientMessage)


@database_sync_to_async
def _project_for(user, project_id: str) -> Project:
    return get_project_for_user(user, project_id)


@database_sync_to_async
def _reload(project_id: str) -> Project | None:
    return Project.objects.filter(pk=project_id).first()


def _send_prompt(project: Project, text: str, model: str | None) -> bool:
    """`services.send_prompt` in a thread of its own (a slow agent must not hold up the
    process's shared sync thread), closing that thread's database connection after."""
    try:
        return services.send_prompt(project, text, model=model)
    finally:
        connection.close()


def _restore(project: Project, message: RestoreMessage | UnrestoreMessage) -> str | None:
    """`services.restore_to` / `unrestore` in a thread of its own (agent calls); returns the
    first undone message (None after an unrestore)."""
    try:
        if isinstance(message, RestoreMessage):
            return services.restore_to(project, message.messageId)
        services.unrestore(project)
        return None
    finally:
        connection.close()


async def resolve_agent_target(project_id: str) -> AgentTarget | None:
    """The current `AgentTarget` of `project_id` read from the database (None: no agent)."""
    project = await _reload(project_id)
    return None if project is None else agent_target(project)


class ChatConsumer(DoceConsumer):
    """The chat WebSocket of one project (see the module doc for the protocol)."""

    project_id: str = ""
    queue: asyncio.Queue | None = None
    _tasks: list[asyncio.Task]

    async def authorize(self) -> bool:
        try:
            project = await _project_for(self.user, self.scope["url_route"]["kwargs"]["project_id"])
        except Http404:
            return False
        self.project_id = project.id
        return True

    async def on_accepted(self) -> None:
        structlog.contextvars.bind_contextvars(project_id=self.project_id, user_id=self.user.pk)
        self.queue = asyncio.Queue(maxsize=MAX_QUEUE)
        history = relay_hub().join(self.project_id, self._resolve, self.queue)
        # Without an agent yet (the project is starting or stopped) nothing is said here: the
        # workspace shows the project's state, and the relay connects once the agent answers.
        await self._send_event("chat.history", {"events": history})
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._pump()), loop.create_task(self._keepalive())]

    async def on_disconnect(self, code: int) -> None:
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
                await self.close(code=CLOSE_FELL_BEHIND)
                return
            await self.send(text_data=text)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(settings.DOCE_CHAT_KEEPALIVE_SECONDS)
            await self._send_event("chat.keepalive", {})

    # --- client messages ----------------------------------------------------------------

    async def receive_message(self, data: Any) -> None:
        message = await self._validate(data)
        if message is None:
            return
        if isinstance(message, PromptMessage):
            await self._prompt(message)
            return
        if isinstance(message, RestoreMessage | UnrestoreMessage):
            await self._restore(message)
            return
        project = await _reload(self.project_id)
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
        if isinstance(message, AbortMessage | CompactMessage) and not target.session_id:
            await self.send_error(
                "no_session",
                "The agent has no session yet; wait until the project has finished starting.",
            )
            return
        client = async_client_for(target.base_url, target.password)
        try:
            await self._perform(client, target, message)
        except OpencodeError as exc:
            log.info("chat action failed", action=message.type, error=str(exc))
            await self._send_diagnostic(exc.diagnostic)
            return
        await self._send_event("chat.ack", {"action": message.type})

    async def _validate(self, data: Any) -> Any:
        try:
            return _client_message.validate_python(data)
        except ValidationError as exc:
            problems = [
                {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]}
                for err in exc.errors(include_url=False, include_input=False)
            ][:10]
            await self.send_error(
                "invalid_message", "The message is not one the chat understands.", problems
            )
            return None

    async def _prompt(self, message: PromptMessage) -> None:
        project = await _reload(self.project_id)
        if project is None:
            await self.send_error("rejected", "This project no longer exists.")
            return
        try:
            sent = await sync_to_async(_send_prompt, thread_sensitive=False)(
                project, message.text, message.model
            )
        except services.PromptFailed as exc:
            await self._send_diagnostic(exc.diagnostic)
            return
        except services.ProjectActionError as exc:
            await self.send_error("rejected", str(exc))
            return
        ack: dict[str, Any] = {"action": "prompt"}
        if not sent:
            ack["queued"] = True
        await self._send_event("chat.ack", ack)

    async def _restore(self, message: RestoreMessage | UnrestoreMessage) -> None:
        project = await _reload(self.project_id)
        if project is None:
            await self.send_error("rejected", "This project no longer exists.")
            return
        try:
            undone_from = await sync_to_async(_restore, thread_sensitive=False)(project, message)
        except services.PromptFailed as exc:
            await self._send_diagnostic(exc.diagnostic)
            return
        except services.ProjectActionError as exc:
            await self.send_error("rejected", str(exc))
            return
        # The files are back when this is sent; `undoneFrom` (null after an unrestore) is
        # the revert point the chat shows, whether or not the agent's own event came first.
        await self._send_event("chat.ack", {"action": message.type, "undoneFrom": undone_from})

    async def _perform(self, client, target: AgentTarget, message: Any) -> None:
        if isinstance(message, AbortMessage):
            await client.abort(target.session_id)
        elif isinstance(message, CompactMessage):
            project = await _reload(self.project_id)
            model = project.model if project is not None else ""
            if not model:
                raise OpencodeError(
                    make_diagnostic("unknown", "Choose a model first.", retryable=False),
                    operation="compact",
                )
            await client.summarize(target.session_id, model)
        elif isinstance(message, PermissionReplyMessage):
            await client.reply_permission(message.requestId, message.reply)
        elif isinstance(message, QuestionReplyMessage):
            await client.reply_question(message.requestId, message.answers)
        elif isinstance(message, QuestionRejectMessage):
            await client.reject_question(message.requestId)

    # --- sending ------------------------------------------------------------------------

    def error_message(self, code: str, message: str, problems: list | None = None) -> dict:
        payload: dict[str, Any] = {"code": code, "message": message}
        if problems:
            payload["problems"] = problems
        return envelope("chat.error", self.project_id, None, payload)

    async def _send_event(self, kind: str, payload: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):  # the socket may be closing
            await self.send_json(envelope(kind, self.project_id, None, payload))

    async def _send_diagnostic(self, diagnostic) -> None:
        await self._send_event("chat.diagnostic", {"diagnostic": diagnostic.model_dump()})
