"""Job handlers of a project's lifecycle, one per step declared in `projects.chain`.

The chains (type names, what follows each step, what retrying a step means) are declared
there; a handler does its step's work and, on success, queues the step's `then`
(`_enqueue_next`), unless its work says the chain ends here (e.g. the prompt was already
sent). All of a project's jobs share the serialization key `project:<id>`.

Handlers are safe to re-run: a step that finds its work done moves on. A start-chain step
(`docker.composeUp`, `docker.waitReady`, `opencode.sessionCreate`) that finds the project
stopping, stopped or being deleted (the user stopped it after the chain began) does nothing.
Docker failures are `StackError`s whose `permanent` flag tells the queue whether to retry; a
project whose stack cannot start ends in status `error` with the failure's message. An
unreachable Docker Engine is not a failure: the step waits for it (`holds_while_docker_is_down`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from typing import Literal, overload

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from pydantic import BaseModel, Field

from accounts.services import available_models
from doce import events
from doce.docker.failures import FailureKind, StackError
from doce.engine_health import outage_seconds, record_engine_unreachable
from doce.opencode.agents import agent_base_url, client_for_project
from doce.opencode.client import close_clients
from doce.opencode.completion import CompletionCheck, check_completion
from doce.opencode.errors import OpencodeError, make_diagnostic
from doce.opencode.ids import MESSAGE_ID_PATTERN, ascending_message_id
from jobqueue import JobContext, PermanentJobError, is_permanent, job_handler
from projects import attachments, chain, pool, runtime
from projects.agent_config import opencode_provider_config, revoke_gateway_token
from projects.attachments import MAX_ATTACHMENTS, NAME_MAX, QUEUED_ID_PATTERN
from projects.models import AgentState, IllegalTransition, Project, PromptState, project_topic
from projects.ports import ensure_ports, release_ports
from projects.scaffold import scaffold_site
from projects.services import (
    PROMPT_MAX,
    WAITING_FOR_DOCKER,
    adopt_session_title,
    enqueue_step,
    record_completion,
    set_agent_state,
    set_prompt_state,
    set_status,
)

log = structlog.get_logger(__name__)

WAIT_POLL_SECONDS = 1.0
# A readiness wait probes this often, for at most this long per run, before it gives the
# worker back (a reschedule): a preview that answers in 0.8 s is seen at once, not at the
# next lease (seconds).
PROBE_INTERVAL_SECONDS = 0.1
PROBE_SLICE_SECONDS = 5.0
# Between two slices the wait gives the worker back only this long: a service that came up
# in the gap is seen at once, not a second later (seconds).
READY_RESCHEDULE_SECONDS = 0.2
COMPLETION_POLL_SECONDS = 1.0


class ProjectPayload(BaseModel):
    project_id: str = Field(pattern=r"^[0-9a-f]{16}$")


class WaitReadyPayload(ProjectPayload):
    # Epoch seconds when the stack was brought up; the wait is bounded from there.
    started_at: float
    # After the stack answers, continue with the agent session (create chain / prompts).
    then_session: bool = True


class QueuedAttachment(BaseModel):
    """A stored attachment of a queued prompt (`attachments.store_queued`)."""

    id: str = Field(pattern=QUEUED_ID_PATTERN)
    filename: str = Field(min_length=1, max_length=NAME_MAX)
    mime: str = Field(pattern=r"^(image/(png|jpeg|webp|gif)|text/plain)$")


class PromptPayload(ProjectPayload):
    text: str = Field(min_length=1, max_length=PROMPT_MAX)
    model: str = ""
    # The prompt's attachments, checked before the prompt was queued and stored on disk
    # (`attachments.store_queued`): references only, the files stay out of the database.
    attachments: list[QueuedAttachment] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    # OpenCode file parts inline (payloads queued before attachments were stored on disk).
    parts: list[dict[str, str]] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    # Epoch seconds when the prompt was queued; the wait for the agent is bounded from there.
    queued_at: float = Field(default_factory=time.time)
    # The user message's id in the agent, fixed when the job is queued: a re-run (the worker
    # died after sending) finds the message there and does not send it twice.
    message_id: str = Field(default_factory=ascending_message_id, pattern=MESSAGE_ID_PATTERN)


class AdoptPayload(ProjectPayload):
    # The claimed warm stack's `PoolEntry.fingerprint` (template and images it runs).
    fingerprint: str = Field(max_length=64)


class AwaitIdlePayload(ProjectPayload):
    # Epoch milliseconds just before the prompt was sent (OpenCode's message clock).
    since_ms: int
    busy_seen: bool = False


# --- helpers ---------------------------------------------------------------------------------


@overload
def _project(ctx: JobContext, *, allow_missing: Literal[False] = False) -> Project: ...
@overload
def _project(ctx: JobContext, *, allow_missing: Literal[True]) -> Project | None: ...
def _project(ctx: JobContext, *, allow_missing: bool = False) -> Project | None:
    """The payload's project; a vanished one ends the job (it was deleted meanwhile)."""
    structlog.contextvars.bind_contextvars(project_id=ctx.payload.project_id)
    project = Project.objects.filter(pk=ctx.payload.project_id).first()
    if project is None and not allow_missing:
        raise PermanentJobError("The project no longer exists.")
    return project


# A user stopped (or is deleting) the project after its start chain began: the chain's
# remaining steps must not bring it back up, nor put it in `error` for not answering.
HALTED = frozenset({Project.Status.STOPPING, Project.Status.STOPPED, Project.Status.DELETING})


def _halted(ctx: JobContext, project: Project) -> bool:
    if project.status in HALTED:
        ctx.log("skipped: the project was stopped after this step was queued")
        return True
    return False


def _move(ctx: JobContext, project: Project, status: str) -> bool:
    """Set `status` unless the project was stopped or deleted since the chain began (checked
    by compare-and-set, not on the row this job read): then log and return False."""
    try:
        set_status(project, status, from_=Project.TRANSITIONS[status] - HALTED)
    except IllegalTransition as exc:
        ctx.log(f"skipped: the project is {exc.current} now")
        return False
    return True


def _fail_project(project: Project, message: str) -> None:
    # Stopped or deleted meanwhile: a project the user stopped is not put in error.
    with suppress(IllegalTransition):
        set_status(project, Project.Status.ERROR, message)
        # A prompt still waiting for this project's stack will not be sent: say why.
        set_prompt_state(project, PromptState.FAILED, message, only_from=(PromptState.QUEUED,))


def user_message(exc: BaseException) -> str:
    """What to tell the user about a failed step (never a traceback or a secret)."""
    if isinstance(exc, StackError):
        return exc.failure.message
    if isinstance(exc, OpencodeError):
        return exc.diagnostic.message
    if isinstance(exc, PermanentJobError):
        return str(exc)
    return "An unexpected error stopped this step. The job's log in the queue has the details."


@contextmanager
def prompt_fails_with_job(ctx: JobContext, project: Project) -> Iterator[None]:
    """On the job's last failure, record the prompt as failed with a message a user can act
    on (the project itself may still be fine: only this prompt is lost)."""
    try:
        yield
    except Exception as exc:
        if is_permanent(exc) or ctx.attempt >= ctx.job.max_attempts:
            set_prompt_state(project, PromptState.FAILED, user_message(exc))
        raise


@contextmanager
def project_fails_with_job(ctx: JobContext, project: Project) -> Iterator[None]:
    """On the job's last failure (permanent, or attempts spent), put the project in `error`
    with a message a user can act on; earlier failures are left to the queue's retries."""
    try:
        yield
    except Exception as exc:
        if is_permanent(exc) or ctx.attempt >= ctx.job.max_attempts:
            _fail_project(project, user_message(exc))
        raise


@contextmanager
def holds_while_docker_is_down(ctx: JobContext, project: Project | None) -> Iterator[None]:
    """Hold the step while the Docker Engine is unreachable instead of failing it.

    The step is rescheduled (no attempt spent) after about as long as the outage has lasted
    (2 s at first, at most `DOCE_DOCKER_WAIT_MAX_SECONDS`); a starting project shows
    `WAITING_FOR_DOCKER`. A worker that sees the Engine back runs held steps at once
    (`housekeeping.record_engine_health`). Every other failure passes through.
    """
    try:
        yield
    except StackError as exc:
        if exc.failure.kind != FailureKind.ENGINE_UNREACHABLE:
            raise
        record_engine_unreachable()
        delay = min(settings.DOCE_DOCKER_WAIT_MAX_SECONDS, max(2.0, outage_seconds()))
        ctx.log("Docker Engine unreachable: waiting for it", retry_in_s=round(delay, 1))
        if project is not None and project.status_reason != WAITING_FOR_DOCKER:
            # Only a project on its way up says so (a stopped or deleted one stays as it is).
            with suppress(IllegalTransition):
                waiting = (Project.Status.CREATED, Project.Status.STARTING)
                set_status(project, Project.Status.STARTING, WAITING_FOR_DOCKER, from_=waiting)
        ctx.reschedule(delay)


def _render(project: Project) -> None:
    """Write the stack files: the owner's providers through the gateway, a new gateway token."""
    runtime.render_stack(project, provider_config=opencode_provider_config(project))


def _bring_up(ctx: JobContext, project: Project) -> None:
    """Render and `compose up`, then queue the readiness wait. A port clash gets new ports."""
    ensure_ports(project)
    _render(project)
    ctx.throw_if_cancel_requested()
    set_agent_state(project, AgentState.STARTING)
    try:
        runtime.stack_up(project)
    except StackError as exc:
        if exc.failure.kind == FailureKind.PORT_IN_USE:
            release_ports(project)  # the next attempt allocates free ones
        ctx.log("compose up failed", kind=str(exc.failure.kind), retryable=not exc.permanent)
        raise
    if project.status_reason == WAITING_FOR_DOCKER:  # Docker answered: no longer waiting
        with suppress(IllegalTransition):
            set_status(project, Project.Status.STARTING, from_=[Project.Status.STARTING])
    _enqueue_next(ctx, {"project_id": project.id, "started_at": time.time(), "then_session": True})


def _enqueue_next(ctx: JobContext, payload: dict, **kwargs) -> None:
    """Queue the step that follows this job's in the declared chain (`chain.STEPS`)."""
    then = chain.STEPS[ctx.job.type].then
    assert then is not None, f"{ctx.job.type} ends its chain"
    ctx.enqueue(then, payload, **kwargs)


# --- create chain ---------------------------------------------------------------------------


@job_handler(chain.CREATE, payload=ProjectPayload)
def create(ctx: JobContext) -> None:
    """Scaffold the site from the template (once), allocate ports, render the stack."""
    project = _project(ctx)
    with project_fails_with_job(ctx, project), holds_while_docker_is_down(ctx, project):
        if scaffold_site(project):
            ctx.log("site scaffolded from the template")
        ensure_ports(project)
        _render(project)
    _enqueue_next(ctx, {"project_id": project.id})


@job_handler(chain.ADOPT, payload=AdoptPayload)
def adopt(ctx: JobContext) -> None:
    """The project claimed a warm stack (`projects.pool.claim`): give its agent the owner's
    config (providers through the gateway, the model, a gateway token issued now) and show
    the preview at once (`running`); the agent reads the new config (`POST
    /instance/dispose`, a restart when that fails) and `opencode.waitReady` follows.

    A stack that no longer runs what is current (images rebuilt since it started) or whose
    preview does not answer is brought up like a new one (`compose up` recreates what
    changed) and the start chain's waits follow instead.
    """
    project = _project(ctx)
    if _halted(ctx, project):
        return
    with project_fails_with_job(ctx, project), holds_while_docker_is_down(ctx, project):
        current = ctx.payload.fingerprint == pool.current_fingerprint()
        if not current or not runtime.preview_answers(project):
            ctx.log("the warm stack is not usable as it is: starting it like a new one")
            ensure_ports(project)
            _render(project)
            set_agent_state(project, AgentState.STARTING)
            runtime.stack_up(project)
            ctx.enqueue(
                chain.WAIT_READY,
                {"project_id": project.id, "started_at": time.time(), "then_session": True},
            )
            return
        _render(project)
        set_agent_state(project, AgentState.STARTING)  # until it has read the new config
        if not _move(ctx, project, Project.Status.RUNNING):
            return
        _reload_agent(ctx, project)
    _enqueue_next(ctx, {"project_id": project.id, "started_at": time.time(), "then_session": True})


def _reload_agent(ctx: JobContext, project: Project) -> None:
    """Make the running agent read its rewritten config: `POST /instance/dispose` (no
    restart), or a restart of the agent container when that fails."""
    client = client_for_project(project)
    try:
        if client is not None and client.dispose_instance():
            return
    except OpencodeError as exc:
        ctx.log("the agent did not reload its config", level="warning", error=str(exc))
    runtime.restart_service(project, "agent")
    ctx.log("agent restarted with the owner's config")


@job_handler(chain.COMPOSE_UP, payload=ProjectPayload)
def compose_up(ctx: JobContext) -> None:
    """`compose up -d` the project's stack (idempotent)."""
    project = _project(ctx)
    if _halted(ctx, project):
        return
    # Already starting (e.g. held for Docker): keep its reason; the CAS guards the move.
    if project.status != Project.Status.STARTING and not _move(
        ctx, project, Project.Status.STARTING
    ):
        return
    with project_fails_with_job(ctx, project), holds_while_docker_is_down(ctx, project):
        _bring_up(ctx, project)


@job_handler(chain.ENSURE_RUNNING, payload=ProjectPayload)
def ensure_running(ctx: JobContext) -> None:
    """Make a project's stack run: nothing to do when both services answer already."""
    project = _project(ctx)
    if project.status == Project.Status.DELETING:
        return
    if project.preview_port and project.agent_port and runtime.check_ready(project).ready:
        _move(ctx, project, Project.Status.RUNNING)
        set_agent_state(project, AgentState.READY)
        return
    # A running project whose preview answers keeps showing it while its agent wakes (the
    # agent slept after an idle spell, or crashed): only a dead preview makes it `starting`.
    waking = project.status == Project.Status.RUNNING and runtime.preview_answers(project)
    if (
        not waking
        and project.status != Project.Status.STARTING
        and not _move(ctx, project, Project.Status.STARTING)
    ):
        return
    with project_fails_with_job(ctx, project), holds_while_docker_is_down(ctx, project):
        if not project.site_dir.is_dir():
            scaffold_site(project)
        _bring_up(ctx, project)


def _await_service(
    ctx: JobContext, project: Project, service: str, answers: Callable[[Project], bool]
) -> None:
    """Return once `answers(project)` is true (probed by `_probe`); else reschedule the job
    (`READY_RESCHEDULE_SECONDS`), or, `DOCE_READY_TIMEOUT_SECONDS` after the chain's `started_at`,
    set status `error` and raise `PermanentJobError` naming `service`."""
    if _probe(ctx, lambda: answers(project)):
        return
    waited = time.time() - ctx.payload.started_at
    if waited > settings.DOCE_READY_TIMEOUT_SECONDS:
        message = _not_ready_message(service, waited)
        _fail_project(project, message)
        raise PermanentJobError(message)
    ctx.reschedule(READY_RESCHEDULE_SECONDS)


@job_handler(chain.WAIT_READY, payload=WaitReadyPayload, max_attempts=5)
def wait_ready(ctx: JobContext) -> None:
    """Wait for the preview only: once it answers, the project is `running` (viewable) and
    the agent's own wait (`opencode.waitReady`) follows. After `DOCE_READY_TIMEOUT_SECONDS`
    without an answer, status `error`."""
    project = _project(ctx)
    if _halted(ctx, project):
        return
    _await_service(ctx, project, "preview", runtime.preview_answers)
    if not _move(ctx, project, Project.Status.RUNNING):
        return
    if ctx.payload.then_session:
        _enqueue_next(ctx, {"project_id": project.id, "started_at": ctx.payload.started_at})


@job_handler(chain.AGENT_WAIT_READY, payload=WaitReadyPayload, max_attempts=5)
def agent_wait_ready(ctx: JobContext) -> None:
    """Wait for the agent (`/doc` answers): then `agent_state` is `ready` and the agent
    session (and the prompt) follow. The preview is already shown meanwhile. After
    `DOCE_READY_TIMEOUT_SECONDS` without an answer, status `error`."""
    project = _project(ctx)
    if _halted(ctx, project):
        return
    _await_service(ctx, project, "agent", runtime.agent_answers)
    # Not over a sleep that began meanwhile (idle stop writes `stopping` only from `ready`).
    awake = set(AgentState) - {AgentState.STOPPING}
    ready = set_agent_state(project, AgentState.READY, from_=awake)
    if project.status != Project.Status.RUNNING and not _move(ctx, project, Project.Status.RUNNING):
        return
    if ready and ctx.payload.then_session:
        _enqueue_next(ctx, {"project_id": project.id})


def _probe(ctx: JobContext, answers) -> bool:
    """Call `answers()` every `PROBE_INTERVAL_SECONDS` for up to `PROBE_SLICE_SECONDS`;
    True as soon as it returns True."""
    deadline = time.monotonic() + PROBE_SLICE_SECONDS
    while True:
        if answers():
            return True
        if time.monotonic() >= deadline:
            return False
        ctx.throw_if_cancel_requested()
        time.sleep(PROBE_INTERVAL_SECONDS)


def _not_ready_message(service: str, waited: float) -> str:
    return (
        f"The {service} did not answer within {int(waited)} s. Open the Logs tab "
        "for the containers' output, then start the project again."
    )


@job_handler(chain.SESSION_CREATE, payload=ProjectPayload)
def session_create(ctx: JobContext) -> None:
    """Make sure the project has an agent session (a vanished one is recreated); then send
    the project's first prompt if it has not been sent."""
    project = _project(ctx)
    if _halted(ctx, project):
        return
    with project_fails_with_job(ctx, project):
        client = _agent_client(project)
        session_id = project.agent_session_id
        if session_id and not _session_exists(client, session_id):
            ctx.log("agent session vanished; creating a new one", session_id=session_id)
            session_id = ""
        if not session_id:
            session = client.create_session(title=project.name)
            project.agent_session_id = session.id
            project.save(update_fields=["agent_session_id", "updated_at"])
            ctx.log("agent session created", session_id=session.id)
    if not project.prompt_sent:
        _enqueue_next(
            ctx,
            {"project_id": project.id, "text": project.prompt, "model": project.model},
            dedupe_key=f"{chain.SEND_PROMPT}:{project.id}",
        )


def _session_exists(client, session_id: str) -> bool:
    try:
        client.get_session(session_id)
    except OpencodeError as exc:
        if exc.status_code == 404:
            return False
        raise
    return True


def _agent_client(project: Project):
    client = client_for_project(project)
    if client is None:
        raise PermanentJobError("The project has no agent address (no ports allocated).")
    return client


@job_handler(chain.SEND_PROMPT, payload=PromptPayload)
def send_user_prompt(ctx: JobContext) -> None:
    """Send a prompt to the agent once it answers, then track its completion."""
    project = _project(ctx)
    if project.status == Project.Status.DELETING:
        return
    with prompt_fails_with_job(ctx, project):
        if (
            not project.agent_session_id
            or project.status != Project.Status.RUNNING
            or project.agent_state != AgentState.READY
        ):
            # The stack, the agent or its session is still on its way (a start chain queued
            # before this job), or the agent sleeps (idle stop after this job was queued).
            if time.time() - ctx.payload.queued_at > settings.DOCE_READY_TIMEOUT_SECONDS:
                raise PermanentJobError("The agent did not become available to take the prompt.")
            # Enqueued now, not as follow-ups: follow-ups are dropped on a reschedule.
            if project.status == Project.Status.RUNNING:
                if project.agent_state in (AgentState.STOPPED, AgentState.STOPPING):
                    enqueue_step(project, chain.ENSURE_RUNNING)
                elif project.agent_state == AgentState.READY:
                    enqueue_step(project, chain.SESSION_CREATE)
            ctx.reschedule(WAIT_POLL_SECONDS)
        client = _agent_client(project)
        session_id, message_id = project.agent_session_id, ctx.payload.message_id
        sent = _sent_message(client, session_id, message_id)
        if sent is not None:
            ctx.log("the agent has this prompt already (sent before a restart); not resending")
            since_ms = sent.info.time.created - 1
        else:
            since_ms = int(time.time() * 1000)
            client.prompt_async(
                session_id,
                ctx.payload.text,
                model=ctx.payload.model or project.model,
                parts=ctx.payload.parts + _queued_parts(project, ctx.payload.attachments),
                message_id=message_id,
            )
            # The agent stores the message a moment after its 204: wait for it, so that from
            # here on a re-run of this job finds it and never sends it again.
            _await_message(client, session_id, message_id)
        # The agent keeps the attachments in the conversation now.
        attachments.discard_queued(project.root_dir, [a.id for a in ctx.payload.attachments])
    project.prompt_sent = True
    project.prompt_completed = False
    project.save(update_fields=["prompt_sent", "prompt_completed", "updated_at"])
    set_prompt_state(project, PromptState.RUNNING)
    ctx.log("prompt sent to the agent", chars=len(ctx.payload.text))
    _enqueue_next(ctx, {"project_id": project.id, "since_ms": since_ms})


def _queued_parts(project: Project, stored: list[QueuedAttachment]) -> list[dict[str, str]]:
    """The OpenCode file parts of a queued prompt's stored attachments; one that is gone
    fails the prompt (`PermanentJobError`, shown to the user) rather than send it without."""
    try:
        loaded = attachments.load_queued(project.root_dir, [a.model_dump() for a in stored])
    except attachments.QueuedAttachmentMissing as exc:
        raise PermanentJobError(str(exc)) from None
    return [attachment.part() for attachment in loaded]


# How long a sent prompt may take to appear in the agent's session (seconds).
SENT_MESSAGE_WAIT_SECONDS = 10.0


def _sent_message(client, session_id: str, message_id: str):
    """The session's message `message_id`, or None when the agent does not have it."""
    try:
        return client.get_message(session_id, message_id)
    except OpencodeError as exc:
        if exc.status_code == 404:
            return None
        raise


def _await_message(client, session_id: str, message_id: str) -> None:
    deadline = time.monotonic() + SENT_MESSAGE_WAIT_SECONDS
    while _sent_message(client, session_id, message_id) is None:
        if time.monotonic() > deadline:
            diagnostic = make_diagnostic(
                "unknown", "The agent accepted the prompt but did not record it.", retryable=True
            )
            raise OpencodeError(diagnostic, operation="send prompt")
        time.sleep(0.05)


@job_handler(chain.AWAIT_IDLE, payload=AwaitIdlePayload, max_attempts=20)
def await_idle(ctx: JobContext) -> None:
    """Check once a second whether the agent has answered the prompt; record completion.

    Runs without any browser. `busy_seen` is carried to the next check by re-queueing.
    """
    project = _project(ctx, allow_missing=True)
    if project is None or not project.agent_session_id:
        return
    waited = time.time() - ctx.payload.since_ms / 1000
    with prompt_fails_with_job(ctx, project):
        check = check_completion(
            _agent_client(project),
            project.agent_session_id,
            since_ms=ctx.payload.since_ms,
            busy_seen=ctx.payload.busy_seen,
        )
    if check.finished:
        record_completion(project, check)
        _adopt_title(project)
        if check.state == "done":
            set_prompt_state(project, PromptState.COMPLETED)
        else:
            set_prompt_state(project, PromptState.FAILED, _failure_message(check))
        ctx.log("prompt finished", state=check.state, reason=check.reason)
        return
    if waited > settings.DOCE_PROMPT_TIMEOUT_SECONDS:
        ctx.log("gave up waiting for the prompt to finish", waited_s=int(waited))
        set_prompt_state(
            project,
            PromptState.FAILED,
            f"The agent did not finish within {int(waited)} s; doce stopped waiting.",
        )
        return
    if check.busy_seen and not ctx.payload.busy_seen:
        # Carry what we learned into the next check: a fresh job with the new payload.
        ctx.enqueue(
            chain.AWAIT_IDLE,
            {"project_id": project.id, "since_ms": ctx.payload.since_ms, "busy_seen": True},
            run_at=_in(COMPLETION_POLL_SECONDS),
        )
        return
    ctx.reschedule(COMPLETION_POLL_SECONDS)


def _adopt_title(project: Project) -> None:
    """Name the project after the agent's session title (`services.adopt_session_title`);
    a failure to read it only keeps the current name."""
    try:
        session = _agent_client(project).get_session(project.agent_session_id)
    except (OpencodeError, PermanentJobError):
        return
    adopt_session_title(project, session.title)


_FAILURE_MESSAGES = {
    "aborted": "The answer was stopped before it finished.",
    "no_answer": "The agent went idle without answering; check the model in Settings.",
}


def _failure_message(check: CompletionCheck) -> str:
    """Why a finished check failed, for the user (the agent's diagnostic when it gave one)."""
    if check.diagnostic is not None:
        return check.diagnostic.message
    return _FAILURE_MESSAGES.get(check.reason, "The agent could not answer the prompt.")


def _in(seconds: float) -> datetime:
    return timezone.now() + timedelta(seconds=seconds)


# --- stop, restart, delete --------------------------------------------------------------------


@job_handler(chain.STOP, payload=ProjectPayload)
def stop(ctx: JobContext) -> None:
    """Stop the stack's containers (`compose stop`); files and volumes are kept."""
    project = _project(ctx, allow_missing=True)
    if project is None:
        return
    with holds_while_docker_is_down(ctx, None):
        runtime.stack_stop(project)
    _close_agent_clients(project)
    set_agent_state(project, AgentState.STOPPED)
    try:
        set_status(project, Project.Status.STOPPED)
    except IllegalTransition as exc:
        # Started again (or deleted) while this stop ran: the start chain that follows wins.
        ctx.log(f"stack stopped; the project is {exc.current} now")


@job_handler(chain.STOP_AGENT, payload=ProjectPayload)
def stop_agent(ctx: JobContext) -> None:
    """Put an idle agent to sleep (`compose stop agent`); the preview keeps running.

    Queued by the worker's housekeeping (`services.stop_idle_agents`) after it moved the
    agent from `ready` to `stopping`; a prompt that came meanwhile moved it on (its
    `docker.ensureRunning` runs after this step, on the same serial key), so the stop is
    skipped unless the agent is still `stopping`.
    """
    project = _project(ctx, allow_missing=True)
    if project is None or project.agent_state != AgentState.STOPPING:
        return
    with holds_while_docker_is_down(ctx, None):
        runtime.stop_service(project, "agent")
    _close_agent_clients(project)
    if set_agent_state(project, AgentState.STOPPED, from_=[AgentState.STOPPING]):
        ctx.log("the idle agent sleeps; the preview keeps running")


@job_handler(chain.RESTART_PREVIEW, payload=ProjectPayload)
def restart_preview(ctx: JobContext) -> None:
    """Restart the preview container, then wait for both services again."""
    project = _project(ctx)
    with holds_while_docker_is_down(ctx, None):
        runtime.restart_service(project, "preview")
    _enqueue_next(ctx, {"project_id": project.id, "started_at": time.time(), "then_session": False})


@job_handler(chain.DELETE, payload=ProjectPayload, max_attempts=5)
def delete(ctx: JobContext) -> None:
    """Take the stack down with its volumes, remove the files, free the ports, delete the row.

    Safe to re-run at any point; a project already gone is a success.
    """
    project = _project(ctx, allow_missing=True)
    if project is None:
        return
    revoke_gateway_token(project)  # the agent can no longer reach any model
    with holds_while_docker_is_down(ctx, None):
        runtime.stack_down(project, delete=True)
    _close_agent_clients(project)
    runtime.delete_files(project)
    release_ports(project)
    with transaction.atomic():
        events.emit(project_topic(project.id), "project.deleted", {})
        project.delete()
    log.info("project.deleted", project_id=ctx.payload.project_id)


# While the agent is busy, a provider change waits this long between looks (seconds).
RECONFIGURE_BUSY_POLL_SECONDS = 1.0


@job_handler(chain.RECONFIGURE_AGENT, payload=ProjectPayload, max_attempts=5)
def reconfigure_agent(ctx: JobContext) -> None:
    """A provider of the owner changed: render the agent's config again (providers, a new
    gateway token) and, once the agent is idle, make it read the file again with OpenCode's
    `POST /instance/dispose` (no restart; sessions kept), or restart the agent container when
    that fails. The next prompt can use the change.

    OpenCode 1.18's `PATCH /config` is not used: it writes the project's own config file
    (the site folder, which is exported and deployed) and does not load new providers.
    Only a running project is touched; any other gets the change at its next start.
    """
    project = _project(ctx, allow_missing=True)
    if project is None or project.status != Project.Status.RUNNING:
        return
    if project.agent_state == AgentState.STARTING:
        # Its start rendered the config already; look again once it answers.
        ctx.reschedule(RECONFIGURE_BUSY_POLL_SECONDS)
    if project.agent_state != AgentState.READY:
        # A sleeping agent is not woken: the file is what it reads when a prompt wakes it.
        runtime.write_agent_config(project, opencode_provider_config(project))
        ctx.log("agent config rewritten; the sleeping agent reads it when it wakes")
        _announce_models(project)
        return
    client = client_for_project(project)
    if client is not None and project.agent_session_id:
        try:
            busy = project.agent_session_id in client.session_statuses()
        except OpencodeError:
            busy = False  # not answering: a restart is what it needs anyway
        if busy:
            ctx.reschedule(RECONFIGURE_BUSY_POLL_SECONDS)
    runtime.write_agent_config(project, opencode_provider_config(project))
    reloaded = False
    if client is not None:
        try:
            reloaded = bool(client.dispose_instance())
        except OpencodeError as exc:
            ctx.log("the agent did not reload its config", level="warning", error=str(exc))
    if reloaded:
        ctx.log("agent config reloaded with the current providers")
    else:
        with holds_while_docker_is_down(ctx, None):
            set_agent_state(project, AgentState.STARTING)
            runtime.restart_service(project, "agent")
        # Prompts wait for `ready` again (not a follow-up: this step's chain ends here).
        enqueue_step(
            project,
            chain.AGENT_WAIT_READY,
            {"started_at": time.time(), "then_session": False},
        )
        ctx.log("agent restarted with the current providers")
    _announce_models(project)


def _announce_models(project: Project) -> None:
    events.emit(
        project_topic(project.id),
        "project.models",
        {"models": available_models(project.owner), "model": project.model},
    )


def _close_agent_clients(project: Project) -> None:
    base_url = agent_base_url(project)
    if base_url:
        close_clients(base_url)
