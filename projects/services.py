"""Project actions: one function per thing a user (or the system) does to a project.

Each public function is atomic with the jobs it enqueues and the outbox events it writes: a
crash or an error leaves nothing half-done. Callers resolve the project through
`projects.models.get_project_for_user` first; these functions trust the project they get.
Errors meant for users are `ProjectActionError` (a message fit to show, and for the API an
HTTP status).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

import jobqueue
from accounts.services import available_models, default_model, model_takes_images
from doce import events
from doce.opencode.agents import client_for_project
from doce.opencode.completion import CompletionCheck
from doce.opencode.errors import OpencodeError
from doce.opencode.normalize import is_placeholder_title
from doce.text import InvalidText, clean_line, clean_text, without_bidi_controls
from jobqueue.models import RETRYABLE_STATES, Job, JobState
from projects import chain, edge, pool
from projects.agent_config import revoke_gateway_token
from projects.attachments import Attachment, discard_queued, store_queued
from projects.models import (
    AgentState,
    IllegalTransition,
    Project,
    PromptState,
    Viewer,
    owner_topic,
    project_topic,
)

log = structlog.get_logger(__name__)

NAME_MAX = 60  # of a name made from the prompt
PROJECT_NAME_MAX = 120  # of a name given by the user
# The longest prompt (characters) any path accepts: create form, API, chat, queued job.
PROMPT_MAX = 20_000


class ProjectActionError(Exception):
    """An action a user asked for cannot be done; `str()` says why and what to do.

    `status` is the HTTP status the API answers with (400 by default, 409 for a conflict
    with the project's state, 412 when settings must be completed first).
    """

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class NoProviderConfigured(ProjectActionError):
    """The user has no model provider: nothing could answer the prompt."""

    def __init__(self) -> None:
        super().__init__("Add a model provider in Settings before creating a project.", status=412)


def serial_key(project: Project | str) -> str:
    """The queue serialization key of a project's jobs (also its outbox topic)."""
    return project_topic(project if isinstance(project, str) else project.id)


def enqueue_step(
    project: Project, type: str, payload: dict | None = None, *, dedupe: bool = True, **kwargs
):
    """Enqueue job `type` for `project`: payload gets `project_id`, serial key per project,
    dedupe key `<type>:<project id>` unless `dedupe=False`."""
    return jobqueue.enqueue(
        type,
        {"project_id": project.id, **(payload or {})},
        serial_key=serial_key(project),
        dedupe_key=f"{type}:{project.id}" if dedupe else None,
        **kwargs,
    )


def set_status(
    project: Project, status: str, reason: str = "", *, from_: Iterable[str] | None = None
) -> None:
    """Move the project to `status` (with `reason`, e.g. why it is in `error`) and record
    `project.status`: the one writer of `Project.status`.

    A compare-and-set: the row is updated only while its status is one that
    `Project.TRANSITIONS[status]` allows (narrowed to `from_` when given: the statuses the
    caller's decision was based on), so two writers racing settle on one. Raises
    `IllegalTransition` (nothing written) otherwise, `Project.DoesNotExist` when the row is
    gone. The event commits with the change; `project` gets the new status, reason and time.
    """
    sources = Project.TRANSITIONS[status]
    if from_ is not None:
        sources = sources & frozenset(from_)
    now = timezone.now()
    with transaction.atomic():
        updated = Project.objects.filter(pk=project.pk, status__in=sources).update(
            status=status, status_reason=reason, updated_at=now
        )
        if not updated:
            current = Project.objects.values_list("status", flat=True).get(pk=project.pk)
            raise IllegalTransition(project.pk, current, status)
        project.refresh_from_db(
            fields=["status", "status_reason", "updated_at", "preview_port", "agent_state"]
        )
        events.emit(project_topic(project.id), "project.status", _status_payload(project))
        # Routing follows the status (a preview is routed while starting or running).
        edge.request_sync()


def _status_payload(project: Project) -> dict:
    # The one shape of a `project.status` event (workspace.js and dashboard.js read it).
    return {
        "status": project.status,
        "label": project.get_status_display(),
        "reason": project.status_reason,
        "preview_port": project.preview_port,
        "agent_state": project.agent_state,
        "agent_label": AgentState(project.agent_state).label,
    }


def set_agent_state(project: Project, state: str, *, from_: Iterable[str] | None = None) -> bool:
    """Record where the project's agent service stands (`AgentState`): the one writer of
    `Project.agent_state` (and `agent_state_at`, the time of the change).

    A compare-and-set like `set_status`: with `from_`, the row changes only while its agent
    state is one of those (the state the caller's decision was based on). Returns True when
    written (then a `project.status` event carrying both states commits with it, and
    `project` gets the new state), False when another writer moved it first.
    """
    now = timezone.now()
    rows = Project.objects.filter(pk=project.pk)
    if from_ is not None:
        rows = rows.filter(agent_state__in=list(from_))
    with transaction.atomic():
        if not rows.update(agent_state=state, agent_state_at=now):
            return False
        project.refresh_from_db(
            fields=["status", "status_reason", "preview_port", "agent_state", "agent_state_at"]
        )
        events.emit(project_topic(project.id), "project.status", _status_payload(project))
    return True


WAITING_FOR_DOCKER = (
    "Waiting for Docker: the Docker Engine is unreachable. doce keeps trying and carries on "
    "by itself when it answers again."
)
# Steps that call the Docker Engine: held (rescheduled) while it is unreachable.
DOCKER_STEPS = (
    chain.CREATE,
    chain.COMPOSE_UP,
    chain.ENSURE_RUNNING,
    chain.STOP,
    chain.RESTART_PREVIEW,
    chain.DELETE,
)


def resume_held_steps() -> int:
    """Make every Docker step waiting for a later retry due now (the Engine is back).

    Returns how many jobs were made due.
    """
    held = Job.objects.queued().filter(type__in=DOCKER_STEPS, run_at__gt=timezone.now())
    return sum(jobqueue.run_job_now(job) for job in held)


def name_from_prompt(prompt: str) -> str:
    """A short project name from the first words of the prompt (at most 60 chars); the
    prompt's text-direction controls are dropped (a name refuses them)."""
    words = clean_line(without_bidi_controls(prompt)).split(" ")
    name = ""
    for word in words:
        if len(name) + len(word) + 1 > NAME_MAX:
            break
        name = f"{name} {word}".strip()
    name = name or " ".join(words)[:NAME_MAX]
    return name[:1].upper() + name[1:] if name else "Untitled site"


def clean_prompt(text: str, *, empty: str = "Write a message for the agent.") -> str:
    """The prompt `text` stripped; raises `ProjectActionError` when it is empty (message
    `empty`), longer than `PROMPT_MAX` or holds control characters (`doce.text.clean_text`)."""
    text = text.strip()
    if not text:
        raise ProjectActionError(empty)
    if len(text) > PROMPT_MAX:
        raise ProjectActionError(f"Keep the prompt under {PROMPT_MAX:,} characters.")
    return _checked(clean_text, text)


def clean_name(name: str) -> str:
    """A project name as one line (`doce.text.clean_line`: whitespace runs collapsed,
    control and text-direction characters refused); "" stays "". Raises
    `ProjectActionError` for refused characters or more than `PROJECT_NAME_MAX` characters."""
    name = _checked(clean_line, name)
    if len(name) > PROJECT_NAME_MAX:
        raise ProjectActionError(f"A name needs 1 to {PROJECT_NAME_MAX} characters.")
    return name


def _checked(rule, value: str) -> str:
    try:
        return rule(value)
    except InvalidText as exc:
        raise ProjectActionError(str(exc)) from None


def resolve_model(user, model: str | None) -> str:
    """The model to use: `model` when it is one of the user's, else their default.

    Raises `NoProviderConfigured` without providers, `ProjectActionError` for a model the
    user has no provider for.
    """
    models = available_models(user)
    if not models:
        raise NoProviderConfigured
    if not model:
        return default_model(user)
    if model not in models:
        raise ProjectActionError(
            f"{model} is not one of your models. Choose one from your providers in Settings."
        )
    return model


@transaction.atomic
def create_project(user, *, prompt: str, model: str | None = None, name: str = "") -> Project:
    """Create a project from a prompt and start its create chain: on a claimed warm stack
    (`pool.claim`: the project is `starting` at once, its preview routed) the chain
    `chain.WARM_CREATE_CHAIN`, else `chain.CREATE_CHAIN`.

    Raises `NoProviderConfigured` or `ProjectActionError` (empty, too long or control
    characters in the prompt or name, unknown model) before anything is written.
    """
    prompt = clean_prompt(prompt, empty="Describe the website you want.")
    chosen_name = clean_name(name)
    model = resolve_model(user, model)
    project = Project.objects.create(
        owner=user,
        prompt=prompt,
        model=model,
        name=chosen_name or name_from_prompt(prompt),
        name_from_user=bool(chosen_name),
        prompt_state=PromptState.QUEUED,
    )
    # The dashboard of every tab (and of scripts' users) shows it at once.
    events.emit(
        owner_topic(user.pk),
        "project.created",
        {"id": project.id, "name": project.name, "status": Project.Status.CREATED.value},
    )
    set_status(project, Project.Status.CREATED)
    entry = pool.claim(project)
    if entry is None:
        enqueue_step(project, chain.CREATE)
    else:
        set_status(project, Project.Status.STARTING)
        enqueue_step(project, chain.ADOPT, {"fingerprint": entry.fingerprint})
    log.info("project.created", project_id=project.id, warm=entry is not None)
    return project


@transaction.atomic
def start_project(project: Project) -> None:
    """Bring a stopped (or failed) project's stack up again (`docker.ensureRunning`)."""
    project = _locked(project)
    if project.status == Project.Status.DELETING:
        raise ProjectActionError("This project is being deleted.", status=409)
    if project.status != Project.Status.RUNNING:
        set_status(project, Project.Status.STARTING)
    enqueue_step(project, chain.ENSURE_RUNNING)


@transaction.atomic
def stop_project(project: Project) -> None:
    """Stop the project's containers (files and conversation are kept)."""
    project = _locked(project)
    if project.status == Project.Status.DELETING:
        raise ProjectActionError("This project is being deleted.", status=409)
    _cancel_jobs(project, chain.STOP_CANCELS)
    set_status(project, Project.Status.STOPPING)
    enqueue_step(project, chain.STOP)


@transaction.atomic
def restart_preview(project: Project) -> None:
    """Restart the preview container (the dev server), e.g. after it got stuck."""
    project = _locked(project)
    if project.status != Project.Status.RUNNING:
        raise ProjectActionError("Start the project first.", status=409)
    enqueue_step(project, chain.RESTART_PREVIEW)


class PromptFailed(ProjectActionError):
    """The running agent could not take the prompt; `diagnostic` says why (502 in the API)."""

    def __init__(self, diagnostic) -> None:
        super().__init__(diagnostic.message, status=502)
        self.diagnostic = diagnostic


def send_prompt(
    project: Project,
    text: str,
    *,
    model: str | None = None,
    attachments: Sequence[Attachment] = (),
) -> bool:
    """Send a prompt to the project's agent: the one prompt path of the chat and the API.

    Validates first (`clean_prompt`: empty, too long, control characters; `model` against
    the owner's models with `resolve_model`; a project being deleted is a 409).
    `attachments` were checked by `projects.attachments.check_attachments` and travel as
    file parts after the text. A `model` other than the project's becomes the project's
    model (the picker remembers it). Then, when the project is running with an agent
    session, sends straight to the agent and tracks completion (`record_prompt_sent`);
    otherwise queues `opencode.sendUserPrompt`, after starting the stack when it is not
    running. Returns True when sent directly, False when queued.

    Raises `ProjectActionError` (nothing written) or `PromptFailed` (the agent did not take
    it; carries the agent's `Diagnostic`).
    """
    text = clean_prompt(text)
    stored: list[dict[str, str]] = []  # attachments written to disk for a queued prompt
    try:
        client, chosen, project = _send_or_queue(project, text, model, attachments, stored)
    except BaseException:
        # Nothing half-written: the queued prompt's files go when its job does not exist.
        discard_queued(project.root_dir, [ref["id"] for ref in stored])
        raise
    if client is None:
        return False
    parts = [attachment.part() for attachment in attachments]
    # Outside the transaction: no row lock is held across the agent's HTTP call.
    since_ms = int(time.time() * 1000)
    try:
        client.prompt_async(project.agent_session_id, text, model=chosen or None, parts=parts)
    except OpencodeError as exc:
        log.info("prompt.send_failed", project_id=project.id, error=str(exc))
        set_prompt_state(project, PromptState.FAILED, exc.diagnostic.message)
        raise PromptFailed(exc.diagnostic) from None
    record_prompt_sent(project, since_ms=since_ms)
    return True


def _refuse_images_for(user, model: str, attachments: Sequence[Attachment]) -> None:
    """`ProjectActionError` (400) when `attachments` hold an image and `model` does not take
    images (`accounts.services.model_takes_images`), before anything is sent or queued."""
    images = [a.filename for a in attachments if a.is_image]
    if images and not model_takes_images(user, model):
        raise ProjectActionError(
            f"{model or 'This model'} does not take images ({', '.join(images)}). Attach text "
            "files only, choose a model that reads images, or, for a vision model of your own "
            'server, tick "Its models accept images" on its provider in Settings.'
        )


def _send_or_queue(
    project: Project,
    text: str,
    model: str | None,
    attachments: Sequence[Attachment],
    stored: list[dict[str, str]],
) -> tuple[Any, str, Project]:
    """`send_prompt`'s checks and choice, under the project's row lock. Returns the agent
    client to send to now (None after queueing `opencode.sendUserPrompt`, its attachments
    stored on disk and their references appended to `stored`), the model to use, and the
    locked project row."""
    with transaction.atomic():
        project = _locked(project)
        if project.status == Project.Status.DELETING:
            raise ProjectActionError("This project is being deleted.", status=409)
        chosen = resolve_model(project.owner, model) if model else project.model
        _refuse_images_for(project.owner, chosen, attachments)
        if chosen and chosen != project.model:
            _remember_model(project, chosen)
        client = (
            client_for_project(project)
            if project.status == Project.Status.RUNNING
            and project.agent_session_id
            and project.agent_state == AgentState.READY
            else None
        )
        if client is None:
            if project.status != Project.Status.RUNNING:
                start_project(project)
            elif project.agent_state in (AgentState.STOPPED, AgentState.STOPPING):
                wake_agent(project)
            stored.extend(store_queued(project.root_dir, attachments))
            enqueue_step(
                project,
                chain.SEND_PROMPT,
                {"text": text, "model": chosen, "attachments": stored},
                dedupe=False,
            )
            set_prompt_state(project, PromptState.QUEUED)
        return client, chosen, project


@transaction.atomic
def change_model(project: Project, model: str) -> None:
    """Use `model` for this project's next prompts. Raises `ProjectActionError`."""
    if not model:
        # resolve_model would pick the default: an empty choice must not switch silently.
        raise ProjectActionError("Choose one of your models.")
    _remember_model(project, resolve_model(project.owner, model))


def _remember_model(project: Project, model: str) -> None:
    project.model = model
    project.save(update_fields=["model", "updated_at"])
    events.emit(project_topic(project.id), "project.model", {"model": project.model})


def _session_client(project: Project):
    """The agent client and session id of a running project; `ProjectActionError` (409)
    when it has none (stopped, starting, or no session yet)."""
    client = client_for_project(project)
    if project.status != Project.Status.RUNNING or client is None or not project.agent_session_id:
        raise ProjectActionError("Start the project first; its agent is not running.", status=409)
    return client, project.agent_session_id


def _agent_call(project: Project, call):
    try:
        return call()
    except OpencodeError as exc:
        if exc.status_code in (400, 404):
            raise ProjectActionError(exc.diagnostic.message, status=409) from None
        raise PromptFailed(exc.diagnostic) from None


# Why a restore (or its undo) is refused while the agent works: reverting files under a
# running turn would mix its edits with the restored state.
RESTORE_BUSY_MESSAGE = (
    "The agent is working on a prompt: wait until it has finished (or stop it), then restore."
)


def _refuse_while_busy(project: Project, client, session_id: str) -> None:
    """`ProjectActionError` (409, `RESTORE_BUSY_MESSAGE`) when a prompt of the project is
    queued (the agent will be busy with it) or the agent's session is busy now."""
    if project.prompt_state == PromptState.QUEUED:
        raise ProjectActionError(RESTORE_BUSY_MESSAGE, status=409)
    if session_id in _agent_call(project, client.session_statuses):
        raise ProjectActionError(RESTORE_BUSY_MESSAGE, status=409)


def restore_to(project: Project, message_id: str) -> str:
    """Restore the conversation and the site's files to how they were when the turn of user
    message `message_id` ended: every later message and the file changes they made are
    undone (OpenCode's revert at the next user message). Undone messages stay visible and
    `unrestore` brings everything back, until the next prompt makes the restore final
    (OpenCode's semantics, checked with the pinned binary).

    Returns the id of the first undone message. Raises `ProjectActionError`: 409 when the
    agent is not running, nothing follows the message, or a prompt is queued or running
    (`RESTORE_BUSY_MESSAGE`); 404 when the message is not a user message of the session;
    `PromptFailed` (502) when the agent failed.
    """
    client, session_id = _session_client(project)
    _refuse_while_busy(project, client, session_id)
    messages = _agent_call(project, lambda: client.messages(session_id))
    ids = [m.info.id for m in messages]
    if message_id not in ids or messages[ids.index(message_id)].info.role != "user":
        raise ProjectActionError(
            "No message of yours with that id in this conversation.", status=404
        )
    later = [m for m in messages[ids.index(message_id) + 1 :] if m.info.role == "user"]
    if not later:
        raise ProjectActionError("Nothing came after this message: nothing to restore.", status=409)
    first_undone = later[0].info.id
    _agent_call(project, lambda: client.revert(session_id, first_undone))
    log.info("project.restored", project_id=project.id, undone_from=first_undone)
    return first_undone


def unrestore(project: Project) -> None:
    """Undo the last `restore_to` (messages and files come back) while no prompt has made it
    final. Raises `ProjectActionError` (409: agent not running, a prompt queued or running,
    or nothing to undo), `PromptFailed` (502)."""
    client, session_id = _session_client(project)
    _refuse_while_busy(project, client, session_id)
    session = _agent_call(project, lambda: client.get_session(session_id))
    if not session.revert:
        raise ProjectActionError("There is no restore to undo.", status=409)
    _agent_call(project, lambda: client.unrevert(session_id))
    log.info("project.unrestored", project_id=project.id)


@transaction.atomic
def rename_project(project: Project, name: str) -> None:
    """Rename the project (1 to 120 characters, one line: see `clean_name`)."""
    name = clean_name(name)
    if not name:
        raise ProjectActionError(f"A name needs 1 to {PROJECT_NAME_MAX} characters.")
    project.name = name
    project.name_from_user = True
    project.save(update_fields=["name", "name_from_user", "updated_at"])
    events.emit(project_topic(project.id), "project.renamed", {"name": name})


def adopt_session_title(project: Project, title: str) -> bool:
    """Name the project after its agent session's `title` (OpenCode writes a short one from
    the first prompt) unless the user chose the name; placeholder titles and titles that are
    not a clean line are ignored. Returns True when the name changed."""
    if project.name_from_user or not title or is_placeholder_title(title):
        return False
    try:
        name = clean_name(title)[:PROJECT_NAME_MAX]
    except ProjectActionError:
        return False
    if not name or name == project.name:
        return False
    with transaction.atomic():
        updated = Project.objects.filter(pk=project.pk, name_from_user=False).update(
            name=name, updated_at=timezone.now()
        )
        if updated:
            project.name = name
            events.emit(project_topic(project.id), "project.renamed", {"name": name})
    return bool(updated)


def reconfigure_agents(owner=None) -> int:
    """Queue `opencode.reconfigure` for the running projects of `owner` (None: of every user,
    when an instance provider changed), so a provider added, edited or removed reaches their
    agents without a restart by the user. Returns how many were queued (one per project at a
    time: the step's dedupe key)."""
    running = Project.objects.filter(status=Project.Status.RUNNING)
    if owner is not None:
        running = running.filter(owner=owner)
    count = 0
    for project in running:
        enqueue_step(project, chain.RECONFIGURE_AGENT)
        count += 1
    return count


def providers_changed(sender, instance, **kwargs) -> None:
    """Signal receiver (`ProviderCredential` saved or deleted): reconfigure the agents that
    can use it once the change is committed."""
    owner = instance.user if instance.user_id is not None else None
    transaction.on_commit(lambda: reconfigure_agents(owner))


@transaction.atomic
def delete_project(project: Project) -> None:
    """Delete the project: containers and volumes, files, ports, then the row (a job)."""
    project = _locked(project)
    _cancel_jobs(project, None, include_running=True)
    set_status(project, Project.Status.DELETING)
    revoke_gateway_token(project)  # its agent reaches no model from now on
    enqueue_step(project, chain.DELETE)


@transaction.atomic
def record_prompt_sent(project: Project, *, since_ms: int) -> None:
    """Mark a prompt as sent straight to the agent (`send_prompt`) and track its completion."""
    Project.objects.filter(pk=project.pk).update(
        prompt_sent=True, prompt_completed=False, updated_at=timezone.now()
    )
    set_prompt_state(project, PromptState.RUNNING)
    enqueue_step(project, chain.AWAIT_IDLE, {"since_ms": since_ms}, dedupe=False)


def record_completion(project: Project, check: CompletionCheck) -> bool:
    """Record a finished completion check (`prompt_completed = True`); False while pending.

    A failed turn is over too: it is recorded as completed, and the chat shows its error.
    """
    if not check.finished:
        return False
    project.prompt_completed = True
    project.save(update_fields=["prompt_completed", "updated_at"])
    return True


def set_prompt_state(
    project: Project, state: str, failure: str = "", *, only_from: tuple[str, ...] = ()
) -> None:
    """Record where the project's latest prompt stands (`PromptState`); `failure` is why it
    failed, in words a user can act on (kept only with `failed`). With `only_from`, only a
    prompt in one of those states changes. The one writer of `prompt_state`/`prompt_failure`.
    """
    rows = Project.objects.filter(pk=project.pk)
    if only_from:
        rows = rows.filter(prompt_state__in=only_from)
    rows.update(
        prompt_state=state,
        prompt_failure=failure if state == PromptState.FAILED else "",
        updated_at=timezone.now(),
    )


def mark_viewed(project: Project) -> None:
    """Record that someone looked at the project now (for idle stop)."""
    Project.objects.filter(pk=project.pk).update(last_viewed_at=timezone.now())


def idle_projects(now=None) -> list[Project]:
    """Running projects with no live viewer, no view and no activity (status change, prompt)
    for `DOCE_IDLE_STOP_SECONDS`, and no prompt still being answered."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.DOCE_IDLE_STOP_SECONDS)
    watched = Viewer.objects.live(now).values("project_id")
    return list(
        Project.objects.filter(status=Project.Status.RUNNING)
        .exclude(pk__in=watched)
        .exclude(last_viewed_at__gt=cutoff)
        .exclude(updated_at__gt=cutoff)
        .exclude(prompt_sent=True, prompt_completed=False)
    )


def wake_agent(project: Project) -> None:
    """Start a running project's sleeping agent (`docker.ensureRunning`: the preview stays
    up and shown, the agent is started and waited for). Queued at most once at a time."""
    enqueue_step(project, chain.ENSURE_RUNNING)
    log.info("project.agent_wake", project_id=project.id)


def idle_agents(now=None) -> list[Project]:
    """Running projects whose agent has been `ready` for `DOCE_AGENT_IDLE_STOP_SECONDS` with
    no live chat viewer, no view, no activity (status change, prompt) and no prompt queued
    or being answered in that time; [] when the setting is 0."""
    seconds = settings.DOCE_AGENT_IDLE_STOP_SECONDS
    if not seconds:
        return []
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=seconds)
    watched = Viewer.objects.live(now).values("project_id")
    return list(
        Project.objects.filter(
            status=Project.Status.RUNNING,
            agent_state=AgentState.READY,
            agent_state_at__lte=cutoff,
        )
        .exclude(pk__in=watched)
        .exclude(last_viewed_at__gt=cutoff)
        .exclude(updated_at__gt=cutoff)
        .exclude(prompt_sent=True, prompt_completed=False)
        .exclude(prompt_state__in=[PromptState.QUEUED, PromptState.RUNNING])
    )


def stop_idle_agents(now=None) -> int:
    """Put every idle agent to sleep (see `idle_agents`): its state moves `ready` →
    `stopping` (compare-and-set: a prompt that woke or used it meanwhile wins) and a
    `docker.stopAgent` is queued (one per project at a time). Returns how many."""
    stopped = 0
    for project in idle_agents(now):
        with transaction.atomic():
            if not set_agent_state(project, AgentState.STOPPING, from_=[AgentState.READY]):
                continue
            enqueue_step(project, chain.STOP_AGENT)
        log.info("project.agent_idle_stop", project_id=project.id)
        stopped += 1
    return stopped


def stop_idle_projects() -> int:
    """Stop every idle project (see `idle_projects`); returns how many were asked to stop."""
    stopped = 0
    for project in idle_projects():
        try:
            stop_project(project)
        except ProjectActionError:
            continue
        log.info("project.idle_stop", project_id=project.id)
        stopped += 1
    return stopped


def _locked(project: Project) -> Project:
    return Project.objects.select_for_update().get(pk=project.pk)


def _cancel_jobs(
    project: Project, types: tuple[str, ...] | None, *, include_running: bool = False
) -> None:
    """Cancel the project's queued jobs (of `types`, or all); with `include_running`, ask
    running ones to stop at their next checkpoint too."""
    states = [JobState.QUEUED, JobState.RUNNING] if include_running else [JobState.QUEUED]
    jobs = Job.objects.filter(serial_key=serial_key(project), state__in=states)
    if types is not None:
        jobs = jobs.filter(type__in=types)
    for job in jobs:
        jobqueue.cancel_job(job)


@transaction.atomic
def retry_project(project: Project) -> None:
    """Run the latest failed or cancelled step of a project in `error` again (`retry_step`).

    Raises `ProjectActionError` (409) when the project is not in error or has no such step.
    """
    project = _locked(project)
    if project.status != Project.Status.ERROR:
        raise ProjectActionError("Only a project in error can be retried.", status=409)
    failed = (
        Job.objects.filter(serial_key=serial_key(project), state__in=RETRYABLE_STATES)
        .order_by("-id")
        .values_list("pk", flat=True)
        .first()
    )
    if failed is None:
        raise ProjectActionError("No failed step of this project to retry.", status=409)
    retry_step(project, failed)


@transaction.atomic
def retry_step(project: Project, job_id: int) -> None:
    """Run a failed or cancelled job of this project again (new job, same payload), after
    moving the project to the step's declared `retry_status` (`projects.chain`).

    Raises `ProjectActionError` (409) when the job is not this project's, not finished
    badly, or the project's status cannot move to `retry_status` (e.g. it is being deleted).
    """
    job = Job.objects.filter(pk=job_id, serial_key=serial_key(project)).first()
    if job is None or not job.is_retryable:
        raise ProjectActionError("Only a failed step can be retried.", status=409)
    step = chain.STEPS.get(job.type)
    if step is not None and step.retry_status is not None:
        try:
            set_status(_locked(project), step.retry_status)
        except IllegalTransition as exc:
            state = Project.Status(exc.current).label.lower()
            raise ProjectActionError(
                f"This step can't be retried while the project is {state}.", status=409
            ) from None
    jobqueue.retry_job(job)
