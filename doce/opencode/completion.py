"""Server-side completion of a prompt: has the agent finished answering it?

The queue job `opencode.awaitIdle` calls `check_completion()` about once a second after a
prompt was sent (no browser needed) and stops when it returns `done` or `failed`;
`projects.services.record_completion()` writes the outcome to the project (this adapter
knows sessions and messages, not projects).

Inputs: a sync `OpencodeClient`, the session id, `since_ms` (epoch milliseconds taken just
before `prompt_async` was called; agents run on the same host clock), and `busy_seen` from the
previous check. Rules: a session that is `busy`/`retry` is not done (and `busy_seen` becomes
true). When it is idle, the prompt's user message (the first created at or after `since_ms`)
must have a *newer* assistant message that has completed: an `idle` right after the 204,
before the agent picked the prompt up, is therefore never taken for completion. A completed
assistant message with an error is `failed` (aborted, or a provider error with its
diagnostic); idle after busy with no assistant answer at all is `failed` too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from doce.opencode.client import OpencodeClient
from doce.opencode.errors import Diagnostic, diagnostic_for_agent_error
from doce.opencode.models import MessageWithParts

State = Literal["done", "pending", "failed"]
RECENT_MESSAGES = 50


@dataclass(frozen=True)
class CompletionCheck:
    """Result of one check: `state`, the `busy_seen` to pass next time, and for `failed` a
    `reason` (`aborted`, `agent_error`, `no_answer`) with a `diagnostic` when the agent
    reported one. `message_id` is the answering assistant message, when known."""

    state: State
    busy_seen: bool
    reason: str = ""
    message_id: str | None = None
    diagnostic: Diagnostic | None = None

    @property
    def finished(self) -> bool:
        return self.state != "pending"


def check_completion(
    client: OpencodeClient, session_id: str, *, since_ms: int, busy_seen: bool = False
) -> CompletionCheck:
    """Check once whether the prompt sent at `since_ms` has been answered.

    Makes two calls (`GET /session/status`, `GET /session/{id}/message?limit=50`).
    Raises `OpencodeError` when the agent cannot be asked (see its `retryable` flag).
    """
    status = client.session_statuses().get(session_id)
    if status is not None and status.type in ("busy", "retry"):
        return CompletionCheck("pending", busy_seen=True)
    messages = client.messages(session_id, limit=RECENT_MESSAGES)
    return _judge(messages, since_ms=since_ms, busy_seen=busy_seen)


def _judge(messages: list[MessageWithParts], *, since_ms: int, busy_seen: bool) -> CompletionCheck:
    prompt = next(
        (m for m in messages if m.info.role == "user" and (m.info.time.created or 0) >= since_ms),
        None,
    )
    if prompt is None:
        return CompletionCheck("pending", busy_seen)
    answers = [
        m
        for m in messages
        if m.info.role == "assistant" and (m.info.time.created or 0) >= prompt.info.time.created
    ]
    if not answers:
        if busy_seen:
            return CompletionCheck("failed", busy_seen, reason="no_answer")
        return CompletionCheck("pending", busy_seen)
    last = answers[-1].info
    if last.error:
        if last.error.get("name") == "MessageAbortedError":
            return CompletionCheck("failed", busy_seen, reason="aborted", message_id=last.id)
        return CompletionCheck(
            "failed",
            busy_seen,
            reason="agent_error",
            message_id=last.id,
            diagnostic=diagnostic_for_agent_error(last.error, source="queue"),
        )
    if last.time.completed:
        return CompletionCheck("done", busy_seen, message_id=last.id)
    return CompletionCheck("pending", busy_seen)
