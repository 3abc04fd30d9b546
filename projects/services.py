"""Project actions: one function per thing a user (or the system) does to a project.

Each public function is atomic with the jobs it enqueues and the outbox events it writes: a
crash or an error leaves nothing half-done. Callers resolve the project through
`projects.models.get_project_for_user` first; these functions trust the project they get.
Errors meant for users are `ProjectActionError` (a message fit to show, and for the API an
HTTP status).
"""

from __future__ import annotations

import re
from datetime import timedelta

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

import jobqueue
from accounts.services import available_models, default_model
from doce import events
from projects.models import Project
from projects.streams import project_topic

log = structlog.get_logger(__name__)

NAME_MAX = 60
PROMPT_MAX = 20_000
# The chain that takes a new project from nothing to an agent answering its prompt.
CREATE_CHAIN = (
    "project.create",
    "docker.composeUp",
    "docker.waitReady",
    "opencode.sessionCreate",
    "opencode.sendUserPrompt",
    "opencode.awaitIdle",
)


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


def set_status(project: Project, status: str, reason: str = "") -> None:
    """Change the project's status (and error reason) and record `project.status`.

    Call inside a transaction; the event commits with the change.
    """
    project.status = status
    # An error says why; a start may say what it waits for (WAITING_FOR_DOCKER).
    keeps_reason = status in (Project.Status.ERROR, Project.Status.STARTING)
    project.status_reason = reason if keeps_reason else ""
    project.save(update_fields=["status", "status_reason", "updated_at"])
    events.emit(
        project_topic(project.id),
        "project.status",
        {
            "status": status,
            "label": project.get_status_display(),
            "reason": project.status_reason,
            "preview_port": project.preview_port,
        },
    )


WAITING_FOR_DOCKER = (
    "Waiting for Docker: the Docker Engine is unreachable. doce keeps trying and carries on "
    "by itself when it answers again."
)
# Steps that call the Docker Engine: held (rescheduled) while it is unreachable.
DOCKER_STEPS = (
    "project.create",
    "docker.composeUp",
    "docker.ensureRunning",
    "docker.stop",
    "docker.restartPreview",
    "project.delete",
)


def resume_held_steps() -> int:
    """Make every Docker step waiting for a later retry due now (the Engine is back).

    Returns how many jobs were made due.
    """
    from jobqueue.models import Job

    held = Job.objects.queued().filter(type__in=DOCKER_STEPS, run_at__gt=timezone.now())
    return sum(jobqueue.run_job_now(job) for job in held)


def name_from_prompt(prompt: str) -> str:
    """A short project name from the first words of the prompt (at most 60 chars)."""
    words = re.sub(r"\s+", " ", prompt).strip().split(" ")
    name = ""
    for word in words:
        if len(name) + len(word) + 1 > NAME_MAX:
            break
        name = f"{name} {word}".strip()
    name = name or prompt.strip()[:NAME_MAX]
    return name[:1].upper() + name[1:] if name else "Untitled site"


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
    """Create a project from a prompt and start its create chain (`CREATE_CHAIN`).

    Raises `NoProviderConfigured` or `ProjectActionError` (empty or too long prompt,
    unknown model) before anything is written.
    """
    prompt = prompt.strip()
    if not prompt:
        raise ProjectActionError("Describe the website you want.")
    if len(prompt) > PROMPT_MAX:
        raise ProjectActionError(f"Keep the prompt under {PROMPT_MAX:,} characters.")
    model = resolve_model(user, model)
    project = Project.objects.create(
        owner=user, prompt=prompt, model=model, name=(name.strip() or name_from_prompt(prompt))
    )
    set_status(project, Project.Status.CREATED)
    enqueue_step(project, "project.create")
    log.info("project.created", project_id=project.id)
    return project


@transaction.atomic
def start_project(project: Project) -> None:
    """Bring a stopped (or failed) project's stack up again (`docker.ensureRunning`)."""
    project = _locked(project)
    if project.status == Project.Status.DELETING:
        raise ProjectActionError("This project is being deleted.", status=409)
    if project.status != Project.Status.RUNNING:
        set_status(project, Project.Status.STARTING)
    enqueue_step(project, "docker.ensureRunning")


@transaction.atomic
def stop_project(project: Project) -> None:
    """Stop the project's containers (files and conversation are kept)."""
    project = _locked(project)
    if project.status == Project.Status.DELETING:
        raise ProjectActionError("This project is being deleted.", status=409)
    _cancel_jobs(project, ("docker.ensureRunning", "docker.composeUp", "docker.waitReady"))
    set_status(project, Project.Status.STOPPING)
    enqueue_step(project, "docker.stop")


@transaction.atomic
def restart_preview(project: Project) -> None:
    """Restart the preview container (the dev server), e.g. after it got stuck."""
    project = _locked(project)
    if project.status != Project.Status.RUNNING:
        raise ProjectActionError("Start the project first.", status=409)
    enqueue_step(project, "docker.restartPreview")


@transaction.atomic
def send_prompt(project: Project, text: str, *, model: str | None = None) -> None:
    """Queue a prompt for the agent; starts the stack first when it is not running.

    The job waits for the agent to answer HTTP, sends the prompt, then tracks completion
    server-side. Raises `ProjectActionError` for an empty prompt or an unknown model.
    """
    project = _locked(project)
    text = text.strip()
    if not text:
        raise ProjectActionError("Write a message for the agent.")
    if len(text) > PROMPT_MAX:
        raise ProjectActionError(f"Keep the message under {PROMPT_MAX:,} characters.")
    if project.status == Project.Status.DELETING:
        raise ProjectActionError("This project is being deleted.", status=409)
    chosen = resolve_model(project.owner, model) if model else project.model
    if project.status != Project.Status.RUNNING:
        start_project(project)
    enqueue_step(project, "opencode.sendUserPrompt", {"text": text, "model": chosen}, dedupe=False)


@transaction.atomic
def change_model(project: Project, model: str) -> None:
    """Use `model` for this project's next prompts. Raises `ProjectActionError`."""
    if not model:
        # resolve_model would pick the default: an empty choice must not switch silently.
        raise ProjectActionError("Choose one of your models.")
    project.model = resolve_model(project.owner, model)
    project.save(update_fields=["model", "updated_at"])
    events.emit(project_topic(project.id), "project.model", {"model": project.model})


@transaction.atomic
def rename_project(project: Project, name: str) -> None:
    """Rename the project (1 to 120 characters)."""
    name = re.sub(r"\s+", " ", name).strip()
    if not name or len(name) > 120:
        raise ProjectActionError("A name needs 1 to 120 characters.")
    project.name = name
    project.save(update_fields=["name", "updated_at"])
    events.emit(project_topic(project.id), "project.renamed", {"name": name})


@transaction.atomic
def delete_project(project: Project) -> None:
    """Delete the project: containers and volumes, files, ports, then the row (a job)."""
    project = _locked(project)
    _cancel_jobs(project, None, include_running=True)
    set_status(project, Project.Status.DELETING)
    enqueue_step(project, "project.delete")


@transaction.atomic
def record_prompt_sent(project: Project, *, since_ms: int) -> None:
    """Mark a prompt as sent (by the chat, straight to the agent) and track its completion."""
    Project.objects.filter(pk=project.pk).update(
        prompt_sent=True, prompt_completed=False, updated_at=timezone.now()
    )
    enqueue_step(project, "opencode.awaitIdle", {"since_ms": since_ms}, dedupe=False)


def mark_viewed(project: Project) -> None:
    """Record that someone looked at the project now (for idle stop)."""
    Project.objects.filter(pk=project.pk).update(last_viewed_at=timezone.now())


def idle_projects(now=None) -> list[Project]:
    """Running projects with no live viewer, no view and no activity (status change, prompt)
    for `DOCE_IDLE_STOP_SECONDS`, and no prompt still being answered."""
    from projects.models import Viewer

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
    from jobqueue.models import Job, JobState

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
    from jobqueue.models import RETRYABLE_STATES, Job

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
    """Run a failed or cancelled job of this project again (new job, same payload).

    Raises `ProjectActionError` when the job is not this project's or not finished badly.
    """
    from jobqueue.models import Job

    job = Job.objects.filter(pk=job_id, serial_key=serial_key(project)).first()
    if job is None or not job.is_retryable:
        raise ProjectActionError("Only a failed step can be retried.", status=409)
    if job.type.startswith("docker.") or job.type == "project.create":
        set_status(_locked(project), Project.Status.STARTING)
    jobqueue.retry_job(job)
