"""Turn OpenCode's `/event` stream into doce's chat events. Pure: no network, no database.

One `Normalizer` per upstream stream (per project). It filters the events of other sessions,
keeps the conversation it has seen (so it can say each thing once, and rebuild it for a new
viewer with `snapshot()`), and returns envelopes

    {"type": "chat.…", "projectId": str, "sessionId": str | None, "time": ISO 8601, "payload": {…}}

Mapping (upstream type → doce type: payload):

- `session.status` (on change) → `chat.session.status`:
  `{status: idle|busy|retry, attempt?, message?, next?}`
- `message.part.delta` (field `text`) → `chat.message.part.added`:
  `{messageId, partId, partType: "text", deltaText}` (append)
- `message.part.updated`, text part → `chat.message.part.added`:
  `{messageId, partId, partType: "text", text}` (replace; only when the text changed)
- reasoning delta / part → `chat.reasoning.part`: `{messageId, partId, deltaText | text}`
- tool part first seen (pending, while its input may still stream) → `chat.tool.start`:
  `{messageId, partId, toolCallId, name, input}`, again when its input changes before it
  ends; `completed` → `chat.tool.finish` (`+ output, title, diff?, diffTruncated?`; output
  cut to 8,000 chars; `diff` is a unified diff of a `write`/`edit`, at most
  `MAX_DIFF_LINES` lines, `diffHtml?` the same diff syntax-highlighted in the file's language
  (`doce.highlight.diff_html`: one span per line, Pygments classes; left out past
  `MAX_DIFF_HTML_CHARS`)); `error` →
  `chat.tool.error` (`+ error`). Paths in `input` (`filePath`, `path`) are relative to the
  session directory, never `/app/…`
- user `message.updated` and its text part → `chat.message.user`: `{messageId, text,
  attachments: [{name, mime, url?}]}` (`url`: the image's data URL, for thumbnails), once,
  and again when an attachment part arrives after it; user text never becomes assistant
  text (the echo is suppressed)
- an assistant message's token counts → `chat.usage`: `{tokens, limit?, model}` (`tokens`:
  what the conversation now fills of the model's context; `limit` from
  `context_limits`, the agent's declared model limits)
- an assistant message that completes or fails → `chat.message.final`, **once** per message:
  `{messageId, text, html, error?: {name, message}, aborted?, interrupted?}`; `interrupted`
  when the session went idle with the message still open (the agent died mid-answer)
- `session.error` → `chat.diagnostic`: `{diagnostic}` (and the open message's final with the
  error); an abort is a final with `aborted: true`, not a diagnostic
- `file.edited` → `chat.file.changed`: `{path}` (relative to the session directory)
- `session.updated` with a new title → `chat.session.title`: `{title}` (placeholders skipped)
- `permission.asked` / `permission.replied` → `chat.permission.requested`
  `{requestId, permission, patterns, metadata, toolCallId, messageId}` / `.resolved`
  `{requestId, reply}`
- `question.asked` / `.replied` / `.rejected` → `chat.question.requested`
  `{requestId, questions, toolCallId, messageId}` / `chat.question.resolved`
  `{requestId, answers, rejected}`
- `todo.updated`, and each `todowrite` tool call (so a rebuilt history has the plan) →
  `chat.todo.updated`: `{todos: [{content, status, priority}]}`
- `session.updated` with a revert point → `chat.session.revert`: `{messageId}` (the first
  undone message; null when the restore was undone or made final)
- `session.compacted` → `chat.session.compacted`: `{}`
- `message.removed` / `message.part.removed` → `chat.message.removed` /
  `chat.message.part.removed`: the ids

An assistant message is final when OpenCode marks it completed or failed, when the session
reports an error, or when the session goes idle with it still open. `server.heartbeat` and
`server.connected` only update `last_heartbeat`; other types are dropped (debug log).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from doce.highlight import diff_html
from doce.markdown import render_markdown
from doce.opencode.errors import clean, diagnostic_for_agent_error
from doce.opencode.models import MessageWithParts
from doce.redact import redact_mapping

log = structlog.get_logger("doce.opencode.normalize")

MAX_TOOL_OUTPUT_CHARS = 8000
MAX_DIFF_LINES = 400
# Highlighting multiplies a diff's size (a span per token); past this many characters of
# HTML the card shows the diff as plain lines (`diffHtml` left out), so that a history of
# many large writes stays a reasonable message for a new viewer.
MAX_DIFF_HTML_CHARS = 150_000
# Image data URLs up to this size travel to the chat (thumbnails); larger ones are named only.
MAX_THUMBNAIL_URL_CHARS = 7 * 1024 * 1024
_PATH_KEYS = ("filePath", "path")
ABORTED_MESSAGE = "Stopped before it finished."
_PLACEHOLDER_TITLE = re.compile(r"^(New session|Child session) - \d{4}-\d{2}-\d{2}T")
_LIVENESS = frozenset({"server.heartbeat", "server.connected"})


@dataclass
class _Part:
    id: str
    type: str
    text: str = ""
    call_id: str = ""
    name: str = ""
    input: dict[str, Any] = field(default_factory=dict)
    status: str = ""
    output: str = ""
    title: str = ""
    error: str = ""
    diff: str = ""
    diff_html: str = ""
    diff_truncated: bool = False
    mime: str = ""  # of a file part
    filename: str = ""
    url: str = ""
    synthetic: bool = False
    said: set[str] = field(default_factory=set)  # tool events already emitted
    said_input: dict[str, Any] | None = None  # the input the last start event carried
    # Streaming began before this stream saw it, and OpenCode stores a text part only when
    # it ends: `text` lacks its start until the part's full text arrives.
    partial: bool = False


@dataclass
class _Message:
    id: str
    role: str = ""
    parts: dict[str, _Part] = field(default_factory=dict)
    final: bool = False
    error: dict[str, Any] | None = None
    aborted: bool = False
    interrupted: bool = False
    announced: bool = False  # chat.message.user sent


def is_placeholder_title(title: str) -> bool:
    """Whether `title` is OpenCode's stand-in ("New session - <ISO time>"), not a real one."""
    return bool(_PLACEHOLDER_TITLE.match(title))


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(
    kind: str, project_id: str, session_id: str | None, payload: dict[str, Any]
) -> dict[str, Any]:
    """Build the envelope every chat event travels in."""
    return {
        "type": kind,
        "projectId": project_id,
        "sessionId": session_id,
        "time": now_iso(),
        "payload": payload,
    }


class Normalizer:
    """Stateful mapper of one upstream stream; see the module doc for the mapping.

    `session_id` None adopts the first session an event names (a project's agent serves
    only that project). `directory` (the session's working directory) makes file paths
    relative; it is also learned from `session.created`/`session.updated`.
    """

    def __init__(
        self, project_id: str, session_id: str | None = None, *, directory: str = ""
    ) -> None:
        self.project_id = project_id
        self.session_id = session_id or None
        self.directory = directory.rstrip("/")
        self.messages: dict[str, _Message] = {}
        self.status = ""
        self.title = ""
        self.todos: list[dict[str, Any]] = []
        self.revert: str | None = None  # the first undone message of a restore
        self.usage: dict[str, Any] | None = None
        # `provider/model` → context window (tokens), from the agent's providers.
        self.context_limits: dict[str, int] = {}
        self.permissions: dict[str, dict[str, Any]] = {}
        self.questions: dict[str, dict[str, Any]] = {}
        self.last_heartbeat = 0.0
        # Error messages already shown as a card in this turn (one card per failure).
        self._errors_shown: set[str] = set()
        self._handlers = {
            "session.status": self._session_status,
            "session.idle": self._session_idle,
            "session.error": self._session_error,
            "session.updated": self._session_updated,
            "session.created": self._session_updated,
            "session.compacted": lambda props: [self._env("chat.session.compacted", {})],
            "message.updated": self._message_updated,
            "message.part.updated": self._part_updated,
            "message.part.delta": self._part_delta,
            "message.removed": self._message_removed,
            "message.part.removed": self._part_removed,
            "file.edited": self._file_edited,
            "permission.asked": self._permission_asked,
            "permission.replied": self._permission_replied,
            "question.asked": self._question_asked,
            "question.replied": self._question_resolved,
            "question.rejected": self._question_resolved,
            "todo.updated": self._todo_updated,
        }

    # --- entry points -------------------------------------------------------------------

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Map one upstream event (`{"type", "properties"}`) to zero or more envelopes."""
        kind = event.get("type")
        props = event.get("properties") or {}
        if kind in _LIVENESS:
            self.last_heartbeat = time.monotonic()
            return []
        handler = self._handlers.get(kind)  # type: ignore[arg-type]
        if handler is None:
            log.debug("agent event dropped", upstream_type=kind)
            return []
        if not isinstance(props, dict) or not self._accepts(_session_of(kind, props)):
            return []
        return handler(props)

    def feed_all(self, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for event in events:
            out.extend(self.feed(event))
        return out

    def catch_up(self, messages: Iterable[MessageWithParts]) -> list[dict[str, Any]]:
        """Merge stored messages (`GET /session/{id}/message`) into the state.

        Returns only what was not said yet: new user messages, changed texts (as replace
        events), tool starts/finishes not yet sent, finals not yet sent. Used after a
        reconnect (nothing lost, nothing doubled) and to seed a fresh relay.
        """
        out: list[dict[str, Any]] = []
        for message in messages:
            info = message.info.model_dump(exclude_none=True)
            if not self._accepts(info.get("sessionID")):
                continue
            state = self._message(info["id"], info.get("role", ""))
            for part in message.parts:
                out.extend(self._part_updated({"part": part.model_dump(exclude_none=True)}))
            out.extend(self._message_updated({"info": info}))
            if state.role != "user" and not state.final:
                # An answer in progress that this stream has not seen streaming: its text
                # parts are stored empty until they end (what was streamed is not kept).
                for seen in state.parts.values():
                    if seen.type in ("text", "reasoning") and not seen.text:
                        seen.partial = True
        return out

    def snapshot(self) -> list[dict[str, Any]]:
        """The conversation so far as envelopes, oldest first: what a new viewer needs."""
        out: list[dict[str, Any]] = []
        for message in self.messages.values():
            if message.role == "user":
                text = _joined_text(message)
                if text:
                    out.append(self._user_event(message, text))
                continue
            for part in message.parts.values():
                out.extend(self._part_snapshot(message, part))
            if message.final:
                out.append(self._final_event(message))
        if self.status:
            out.append(self._env("chat.session.status", {"status": self.status}))
        if self.title:
            out.append(self._env("chat.session.title", {"title": self.title}))
        if self.todos:
            out.append(self._env("chat.todo.updated", {"todos": self.todos}))
        if self.revert:
            out.append(self._env("chat.session.revert", {"messageId": self.revert}))
        if self.usage:
            out.append(self._env("chat.usage", self._usage_payload()))
        out.extend(self._env("chat.permission.requested", p) for p in self.permissions.values())
        out.extend(self._env("chat.question.requested", q) for q in self.questions.values())
        return out

    # --- helpers ------------------------------------------------------------------------

    def _accepts(self, session_id: str | None) -> bool:
        if session_id is None:
            return True
        if self.session_id is None:
            self.session_id = session_id
        return session_id == self.session_id

    def _env(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        return envelope(kind, self.project_id, self.session_id, payload)

    def _message(self, message_id: str, role: str = "") -> _Message:
        message = self.messages.get(message_id)
        if message is None:
            message = self.messages[message_id] = _Message(id=message_id)
        if role and not message.role:
            message.role = role
        return message

    def _open_assistant_messages(self) -> list[_Message]:
        return [m for m in self.messages.values() if m.role != "user" and not m.final]

    def _finalize(
        self,
        message: _Message,
        error: dict[str, Any] | None = None,
        *,
        aborted: bool = False,
        interrupted: bool = False,
    ) -> dict[str, Any] | None:
        if message.final:
            return None
        message.final = True
        message.aborted = message.aborted or aborted
        message.interrupted = interrupted
        if error is not None and message.error is None:
            message.error = error
        return self._final_event(message)

    def _final_event(self, message: _Message) -> dict[str, Any]:
        text = _joined_text(message)
        payload: dict[str, Any] = {
            "messageId": message.id,
            "text": text,
            "html": render_markdown(text),
        }
        if message.aborted:
            payload["aborted"] = True
        if message.interrupted:
            payload["interrupted"] = True
        if message.error is not None:
            payload["error"] = _error_payload(message.error, message.aborted)
            self._errors_shown.add(payload["error"]["message"])
        return self._env("chat.message.final", payload)

    def _user_event(self, message: _Message, text: str) -> dict[str, Any]:
        message.announced = True
        attachments = []
        for part in message.parts.values():
            if part.type != "file":
                continue
            item: dict[str, Any] = {"name": part.filename or "attachment", "mime": part.mime}
            url_ok = part.url.startswith("data:image/") and len(part.url) <= MAX_THUMBNAIL_URL_CHARS
            if part.mime.startswith("image/") and url_ok:
                item["url"] = part.url
            attachments.append(item)
        payload = {"messageId": message.id, "text": text, "attachments": attachments}
        return self._env("chat.message.user", payload)

    def _usage_payload(self) -> dict[str, Any]:
        usage = dict(self.usage or {})
        limit = self.context_limits.get(usage.get("model") or "")
        if limit:
            usage["limit"] = limit
        return usage

    def set_context_limits(self, limits: dict[str, int]) -> list[dict[str, Any]]:
        """Learn the models' context windows; returns a `chat.usage` event when the current
        usage gains its limit."""
        self.context_limits = dict(limits)
        if self.usage and self.usage.get("model") in limits:
            return [self._env("chat.usage", self._usage_payload())]
        return []

    def _relative(self, path: str) -> str:
        for base in (self.directory, "/app"):
            if base and path.startswith(base + "/"):
                return path[len(base) + 1 :]
        return path

    def _shown_input(self, part: _Part) -> dict[str, Any]:
        shown = dict(part.input)
        for key in _PATH_KEYS:
            if isinstance(shown.get(key), str):
                shown[key] = self._relative(shown[key])
        return shown

    def _part_snapshot(self, message: _Message, part: _Part) -> list[dict[str, Any]]:
        if part.type == "text" and part.text:
            return [self._text_event(message.id, part, text=part.text)]
        if part.type == "reasoning" and part.text:
            return [self._reasoning_event(message.id, part, text=part.text)]
        if part.type == "tool" and "start" in part.said:
            events = [self._tool_event("chat.tool.start", message.id, part)]
            if "finish" in part.said:
                events.append(self._tool_event("chat.tool.finish", message.id, part))
            if "error" in part.said:
                events.append(self._tool_event("chat.tool.error", message.id, part))
            return events
        return []

    def _text_event(self, message_id: str, part: _Part, **text: str) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "messageId": message_id,
            "partId": part.id,
            "partType": "text",
            **text,
        }
        if part.partial:
            payload["partial"] = True
        return self._env("chat.message.part.added", payload)

    def _reasoning_event(self, message_id: str, part: _Part, **text: str) -> dict[str, Any]:
        extra = {"partial": True} if part.partial else {}
        return self._env(
            "chat.reasoning.part", {"messageId": message_id, "partId": part.id, **text, **extra}
        )

    def _tool_event(self, kind: str, message_id: str, part: _Part) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "messageId": message_id,
            "partId": part.id,
            "toolCallId": part.call_id,
            "name": part.name,
            "input": self._shown_input(part),
        }
        if kind == "chat.tool.finish":
            payload["output"] = part.output
            payload["title"] = part.title
            if part.diff:
                payload["diff"] = part.diff
                if part.diff_html:
                    payload["diffHtml"] = part.diff_html
                if part.diff_truncated:
                    payload["diffTruncated"] = True
        elif kind == "chat.tool.error":
            payload["error"] = part.error
        return self._env(kind, payload)

    # --- handlers -----------------------------------------------------------------------

    def _session_status(self, props: dict[str, Any]) -> list[dict[str, Any]]:
        status = props.get("status") or {}
        kind = str(status.get("type") or "unknown")
        # Messages end before the session says it is idle.
        out = self._session_idle(props) if kind == "idle" else []
        if kind == "busy" and self.status != "busy":
            self._errors_shown.clear()  # a new turn: its failures get their own card
        if kind != self.status or kind == "retry":
            self.status = kind
            payload: dict[str, Any] = {"status": kind}
            if kind == "retry":
                payload.update(
                    attempt=status.get("attempt"),
                    message=clean(str(status.get("message") or "")),
                    next=status.get("next"),
                )
            out.append(self._env("chat.session.status", payload))
        return out

    def _session_idle(self, props: dict[str, Any]) -> list[dict[str, Any]]:
        # Idle with a message still open: the agent stopped without completing it (a crash).
        finals = [
            self._finalize(m, interrupted=True) for m in self._open_assistant_messages() if m.role
        ]
        return [f for f in finals if f is not None]

    def _session_error(self, props: dict[str, Any]) -> list[dict[str, Any]]:
        error = props.get("error") or {}
        aborted = error.get("name") == "MessageAbortedError"
        out = [
            f
            for f in (
                self._finalize(m, error, aborted=aborted) for m in self._open_assistant_messages()
            )
            if f is not None
        ]
        if not aborted:
            diagnostic = diagnostic_for_agent_error(error, source="stream")
            # One card per failure: a message that ended with this error shows it already.
            if diagnostic.message not in self._errors_shown:
                self._errors_shown.add(diagnostic.message)
                out.append(self._env("chat.diagnostic", {"diagnostic": diagnostic.model_dump()}))
        return out

    def _session_updated(self, props: dict[str, Any]) -> list[dict[str, Any]]:
        info = props.get("info") or {}
        if info.get("directory") and not self.directory:
            self.directory = str(info["directory"]).rstrip("/")
        out: list[dict[str, Any]] = []
        revert = info.get("revert") if isinstance(info.get("revert"), dict) else None
        revert_id = str(revert.get("messageID") or "") or None if revert else None
        if revert_id != self.revert:
            self.revert = revert_id
            out.append(self._env("chat.session.revert", {"messageId": revert_id}))
        title = str(info.get("title") or "")
        if not title or title == self.title or _PLACEHOLDER_TITLE.match(title):
            return out
        self.title = title
        out.append(self._env("chat.session.title", {"title": title}))
        return out

    def _message_updated(self, props: dict[str, Any]) -> list[dict[str, Any]]:
        info = props.get("info") or {}
        if not info.get("id"):
            return []
        message = self._message(info["id"], str(info.get("role") or ""))
        if message.role == "user":
            text = _joined_text(message)
            return [self._user_event(message, text)] if text and not message.announced else []
        out = self._usage(info)
        error = info.get("error")
        completed = (info.get("time") or {}).get("completed")
        if error or completed:
            aborted = isinstance(error, dict) and error.get("name") == "MessageAbortedError"
            final = self._finalize(message, error or None, aborted=aborted)
            return out + ([final] if final else [])
        return out

    def _usage(self, info: dict[str, Any]) -> list[dict[str, Any]]:
        """`chat.usage` when an assistant message reports new token counts: what the
        conversation fills of the context (input, cache and output of its latest step)."""
        tokens = info.get("tokens")
        if not isinstance(tokens, dict):
            return []
        cache: dict[str, Any] = (
            tokens.get("cache") or {} if isinstance(tokens.get("cache"), dict) else {}
        )
        used: int = sum(
            int(value)
            for value in (
                tokens.get("input"),
                tokens.get("output"),
                tokens.get("reasoning"),
                cache.get("read"),
                cache.get("write"),
            )
            if isinstance(value, int | float)
        )
        if not used:
            return []
        model = f"{info.get('providerID') or ''}/{info.get('modelID') or ''}".strip("/")
        usage = {"tokens": used, "model": model}
        if usage == self.usage:
            return []
        self.usage = usage
        return [self._env("chat.usage", self._usage_payload())]

    def _part_updated(self, props: dict[str, Any]) -> list[dict[str, Any]]:
        data = props.get("part") or {}
        if not data.get("id") or not data.get("messageID"):
            return []
        message = self._message(data["messageID"])
        kind = str(data.get("type") or "")
        part = message.parts.get(data["id"])
        if part is None:
            part = message.parts[data["id"]] = _Part(id=data["id"], type=kind)
        elif kind:
            part.type = kind
        if message.role == "user":
            if kind == "text":
                part.text = str(data.get("text") or "")
                part.synthetic = bool(data.get("synthetic"))
            elif kind == "file":
                new = not part.mime
                part.mime = str(data.get("mime") or "")
                part.filename = str(data.get("filename") or "")
                part.url = str(data.get("url") or "")
                if new and message.announced:
                    # An attachment after the text: say the message again with it.
                    return [self._user_event(message, _joined_text(message))]
            if not message.announced and _joined_text(message):
                return [self._user_event(message, _joined_text(message))]
            return []
        if kind in ("text", "reasoning"):
            text = str(data.get("text") or "")
            # An empty stored text never wipes what was streamed (a crashed agent loses it).
            if text == part.text or not text:
                return []
            part.text = text
            part.partial = False
            if kind == "text":
                return [self._text_event(message.id, part, text=text)]
            return [self._reasoning_event(message.id, part, text=text)]
        if kind == "tool":
            return self._tool_update(message, part, data)
        return []

    def _tool_update(
        self, message: _Message, part: _Part, data: dict[str, Any]
    ) -> list[dict[str, Any]]:
        state = data.get("state") or {}
        part.call_id = str(data.get("callID") or part.call_id)
        part.name = str(data.get("tool") or part.name)
        part.status = str(state.get("status") or "")
        if isinstance(state.get("input"), dict) and state["input"]:
            part.input = state["input"]
        out: list[dict[str, Any]] = []
        # A card as soon as the call is known (pending: its input may still be streaming),
        # and again while its input grows, until it ends.
        ended = part.status in ("completed", "error")
        if part.status and (
            "start" not in part.said or (not ended and part.input != part.said_input)
        ):
            part.said.add("start")
            part.said_input = dict(part.input)
            out.append(self._tool_event("chat.tool.start", message.id, part))
        if part.name == "todowrite" and isinstance(part.input.get("todos"), list):
            out.extend(self._todos(part.input["todos"], only_changed=True))
        if part.status == "completed" and "finish" not in part.said:
            part.said.add("finish")
            output = str(state.get("output") or "")
            part.output = output[:MAX_TOOL_OUTPUT_CHARS]
            part.title = str(state.get("title") or "")
            metadata: dict[str, Any] = (
                state["metadata"] if isinstance(state.get("metadata"), dict) else {}
            )
            part.diff, part.diff_truncated, part.diff_html = self._tool_diff(part, metadata)
            out.append(self._tool_event("chat.tool.finish", message.id, part))
        elif part.status == "error" and "error" not in part.said:
            part.said.add("error")
            part.error = clean(str(state.get("error") or "The tool failed."))
            out.append(self._tool_event("chat.tool.error", message.id, part))
        return out

    def _part_delta(self, props: dict[str, Any]) -> list[dict[str, Any]]:
        message_id, part_id = props.get("messageID"), props.get("partID")
        delta = props.get("delta")
        if not message_id or not part_id or props.get("field") != "text" or not delta:
            return []
        message = self._message(message_id)
        if message.role == "user" or message.final:
            return []
        part = message.parts.get(part_id)
        if part is None:
            part = message.parts[part_id] = _Part(id=part_id, type="text")
        part.text += delta
        if part.type == "reasoning":
            return [self._reasoning_event(message_id, part, deltaText=delta)]
        return [self._text_event(message_id, part, deltaText=delta)]

    def _message_removed(self, props: dict[str, Any]) -> list[dict[str, Any]]:
        message_id = props.get("messageID")
        if not message_id or self.messages.pop(message_id, None) is None:
            return []
        return [self._env("chat.message.removed", {"messageId": message_id})]

    def _part_removed(self, props: dict[str, Any]) -> list[dict[str, Any]]:
        message = self.messages.get(props.get("messageID") or "")
        part_id = props.get("partID")
        if message is None or message.parts.pop(part_id or "", None) is None:
            return []
        return [
            self._env("chat.message.part.removed", {"messageId": message.id, "partId": part_id})
        ]

    def _file_edited(self, props: dict[str, Any]) -> list[dict[str, Any]]:
        path = str(props.get("file") or "")
        if not path:
            return []
        if self.directory and path.startswith(self.directory + "/"):
            path = path[len(self.directory) + 1 :]
        return [self._env("chat.file.changed", {"path": path})]

    def _permission_asked(self, props: dict[str, Any]) -> list[dict[str, Any]]:
        tool = props.get("tool") or {}
        payload = {
            "requestId": props.get("id"),
            "permission": props.get("permission"),
            "patterns": list(props.get("patterns") or []),
            "metadata": redact_mapping(props.get("metadata") or {}),
            "toolCallId": tool.get("callID"),
            "messageId": tool.get("messageID"),
        }
        self.permissions[str(payload["requestId"])] = payload
        return [self._env("chat.permission.requested", payload)]

    def _permission_replied(self, props: dict[str, Any]) -> list[dict[str, Any]]:
        request_id = str(props.get("requestID") or "")
        self.permissions.pop(request_id, None)
        payload = {"requestId": request_id, "reply": props.get("reply")}
        return [self._env("chat.permission.resolved", payload)]

    def _question_asked(self, props: dict[str, Any]) -> list[dict[str, Any]]:
        tool = props.get("tool") or {}
        payload = {
            "requestId": props.get("id"),
            "questions": list(props.get("questions") or []),
            "toolCallId": tool.get("callID"),
            "messageId": tool.get("messageID"),
        }
        self.questions[str(payload["requestId"])] = payload
        return [self._env("chat.question.requested", payload)]

    def _question_resolved(self, props: dict[str, Any]) -> list[dict[str, Any]]:
        request_id = str(props.get("requestID") or "")
        self.questions.pop(request_id, None)
        rejected = "answers" not in props
        payload = {"requestId": request_id, "answers": props.get("answers"), "rejected": rejected}
        return [self._env("chat.question.resolved", payload)]

    def _todo_updated(self, props: dict[str, Any]) -> list[dict[str, Any]]:
        return self._todos(props.get("todos") or [], only_changed=False)

    def _todos(self, todos: list[Any], *, only_changed: bool) -> list[dict[str, Any]]:
        cleaned = [
            {k: todo.get(k) for k in ("content", "status", "priority")}
            for todo in todos
            if isinstance(todo, dict)
        ]
        if only_changed and cleaned == self.todos:
            return []
        self.todos = cleaned
        return [self._env("chat.todo.updated", {"todos": self.todos})]

    def _tool_diff(self, part: _Part, metadata: dict[str, Any]) -> tuple[str, bool, str]:
        """The unified diff of a finished `edit` (OpenCode's own, from its metadata) or
        `write` (the written content as added lines; an overwrite says so), with paths made
        relative and cut to `MAX_DIFF_LINES` lines; whether it was cut; the diff highlighted
        (`doce.highlight.diff_html`). ("", False, "") for other tools."""
        path = self._relative(str(part.input.get("filePath") or metadata.get("filepath") or ""))
        if part.name == "edit" and isinstance(metadata.get("diff"), str):
            lines = [
                line
                for line in metadata["diff"].splitlines()
                if not line.startswith(("Index: ", "====", "--- ", "+++ "))
            ]
        elif part.name == "write" and isinstance(part.input.get("content"), str):
            content = part.input["content"].splitlines()
            verb = "@@ replaced the whole file @@" if metadata.get("exists") else "@@ new file @@"
            lines = [f"{verb[:-3]} ({len(content)} lines) @@", *("+" + line for line in content)]
        else:
            return "", False, ""
        header = [f"--- {path}", f"+++ {path}"]
        truncated = len(lines) > MAX_DIFF_LINES
        diff = "\n".join(header + lines[:MAX_DIFF_LINES])
        highlighted = diff_html(diff, path)
        return diff, truncated, highlighted if len(highlighted) <= MAX_DIFF_HTML_CHARS else ""


def _session_of(kind: str | None, props: dict[str, Any]) -> str | None:
    """The session an event belongs to, or None for project-wide events (file.edited)."""
    if props.get("sessionID"):
        return str(props["sessionID"])
    for key in ("info", "part"):
        inner = props.get(key)
        if isinstance(inner, dict) and inner.get("sessionID"):
            return str(inner["sessionID"])
    if kind in ("session.created", "session.updated") and isinstance(props.get("info"), dict):
        return props["info"].get("id")
    return None


def _joined_text(message: _Message) -> str:
    return "\n\n".join(
        p.text.strip()
        for p in message.parts.values()
        if p.type == "text" and p.text.strip() and not p.synthetic
    )


def _error_payload(error: dict[str, Any], aborted: bool) -> dict[str, Any]:
    """`name`, `message` and the whole `diagnostic` (title, remediation) of a message's
    error: the chat shows it as the one card of that failure."""
    if aborted:
        return {"name": "MessageAbortedError", "message": ABORTED_MESSAGE}
    diagnostic = diagnostic_for_agent_error(error, source="stream")
    return {
        "name": diagnostic.error_name,
        "message": diagnostic.message,
        "diagnostic": diagnostic.model_dump(),
    }
