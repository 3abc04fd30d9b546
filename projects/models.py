"""The Project: one website, its files on disk, and its Docker stack."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.http import Http404
from django.utils import timezone

from doce.crypto import EncryptedTextField

PROJECT_ID_LENGTH = 16
# Project ids are lowercase hex: safe in paths, compose project names and command lines
# (they can never start with "-").
PROJECT_ID_PATTERN = r"[0-9a-f]{16}"


def project_topic(project_id: str) -> str:
    """`project:<id>`: the outbox topic of a project's events, and the queue serialization
    key of its jobs (so a job's events reach the project's viewers too)."""
    return f"project:{project_id}"


def owner_topic(user_id: int | None) -> str:
    """`owner:<user id>`: the outbox topic of events about a user's set of projects (a project
    created, by any tab or the API), which the dashboard follows."""
    return f"owner:{user_id}"


def new_project_id() -> str:
    """Return a fresh random project id (16 lowercase hex chars)."""
    return secrets.token_hex(PROJECT_ID_LENGTH // 2)


def stack_directory(stack_name: str) -> str:
    """`projects/<stack name>`: where a stack's files live, relative to `DOCE_DATA_DIR`."""
    return f"projects/{stack_name}"


class StackFiles(models.Model):
    """What a project and a warm pool entry share: a Docker stack and a folder of files.

    `stack_name` (16 lowercase hex chars) names the stack: compose project
    `doce_<stack_name>`, container label `dev.doce.project=<stack_name>`. `directory` is the
    folder (relative to `DOCE_DATA_DIR`) holding `site/`, `logs/`, `stack/` and
    `agent-home/`. A project created cold gets its own id for both (`projects/<id>`); a
    project that claims a warm pool entry adopts the entry's (`projects.pool.claim`), so
    they are fields, read by everything that drives the stack or its files.
    """

    stack_name = models.CharField(max_length=PROJECT_ID_LENGTH, unique=True, editable=False)
    directory = models.CharField(max_length=200, unique=True, editable=False)
    # Host ports, allocated by doce (`projects.ports`); NULL until allocated.
    preview_port = models.PositiveIntegerField(null=True, blank=True, unique=True)
    agent_port = models.PositiveIntegerField(null=True, blank=True, unique=True)
    # OPENCODE_SERVER_PASSWORD of the stack's agent container.
    agent_password = EncryptedTextField(blank=True, default="")

    class Meta:
        abstract = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A new row names its stack and folder after its own id (here rather than in save(),
        # so bulk_create gets them too); a claim replaces them (`projects.pool.claim`).
        # Only fields that were loaded: reading a deferred one would query (and recurse).
        loaded = self.__dict__
        if loaded.get("stack_name") == "" and self.pk:
            self.stack_name = self.pk
        if loaded.get("directory") == "" and loaded.get("stack_name"):
            self.directory = stack_directory(self.stack_name)

    @property
    def root_dir(self) -> Path:
        """`<DOCE_DATA_DIR>/<directory>`: holds `site/`, `logs/` and the rendered stack."""
        return Path(settings.DATA_DIR) / self.directory

    @property
    def site_dir(self) -> Path:
        """The website's files, bind-mounted into the preview and agent containers."""
        return self.root_dir / "site"

    @property
    def logs_dir(self) -> Path:
        return self.root_dir / "logs"


class ProjectQuerySet(models.QuerySet):
    def for_user(self, user) -> ProjectQuerySet:
        """Projects owned by `user`; none for an anonymous user."""
        if not getattr(user, "is_authenticated", False):
            return self.none()
        return self.filter(owner=user)


class PromptState(models.TextChoices):
    """Where the latest prompt of a project stands ("" before the first one)."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class AgentState(models.TextChoices):
    """Where a project's agent service stands, apart from the project's status (which follows
    the preview): a project is `running` (viewable) while its agent is still starting, and
    stays `running` while an idle agent sleeps (`stopped`)."""

    STOPPED = "stopped", "Stopped"
    STARTING = "starting", "Starting"
    READY = "ready", "Ready"
    STOPPING = "stopping", "Stopping"


def visible_topics(user) -> list[str]:
    """The topics (= job serial keys) of `user`'s own projects; [] for an anonymous user.

    The one answer to "which project topics may this user see": the dashboard's stream uses
    it, and the queue's monitor gets it through `jobqueue.register_visible_keys`.
    """
    ids = Project.objects.for_user(user).values_list("pk", flat=True)
    return [project_topic(project_id) for project_id in ids]


class IllegalTransition(Exception):
    """A status change the transition table does not allow from the project's current status
    (or another writer changed the status first: compare-and-set). Nothing was written.

    `current` is the status found in the database, `to` the one asked for.
    """

    def __init__(self, project_id: str, current: str, to: str) -> None:
        current, to = str(current), str(to)
        super().__init__(f"Project {project_id} cannot go from {current!r} to {to!r}.")
        self.project_id = project_id
        self.current = current
        self.to = to


class Project(StackFiles):
    """A website project owned by one user, running in compose project `doce_<stack_name>`
    (`StackFiles`: its own id, or a claimed warm pool entry's)."""

    class Status(models.TextChoices):
        CREATED = "created", "Created"
        STARTING = "starting", "Starting"
        RUNNING = "running", "Running"
        STOPPING = "stopping", "Stopping"
        STOPPED = "stopped", "Stopped"
        ERROR = "error", "Error"
        DELETING = "deleting", "Deleting"

    id = models.CharField(
        primary_key=True, max_length=PROJECT_ID_LENGTH, default=new_project_id, editable=False
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="projects"
    )
    name = models.CharField(max_length=120)
    # The user chose the name (create form, API, rename): the agent's session title never
    # replaces it. Otherwise the name made from the prompt gives way to that title.
    name_from_user = models.BooleanField(default=False)
    prompt = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CREATED)
    # Why the project is in `error` (a message a user can act on); empty otherwise.
    status_reason = models.TextField(blank=True, default="")
    # SHA-256 of the agent's model-gateway token (`projects.agent_config.issue_gateway_token`):
    # a new token with every rendering of the agent's config, empty when revoked.
    gateway_token_digest = models.CharField(max_length=64, blank=True, default="", db_index=True)
    # "provider/model", e.g. "openrouter/google/gemini-2.5-flash".
    model = models.CharField(max_length=200, blank=True, default="")
    agent_session_id = models.CharField(max_length=100, blank=True, default="")
    prompt_sent = models.BooleanField(default=False)
    prompt_completed = models.BooleanField(default=False)
    # The latest prompt's own state (`services.set_prompt_state` writes it): queued until
    # the agent takes it, running while it answers, then completed or failed (with why).
    prompt_state = models.CharField(
        max_length=16, choices=PromptState.choices, blank=True, default=""
    )
    prompt_failure = models.TextField(blank=True, default="")
    # The agent service's own readiness (`services.set_agent_state` is the one writer) and
    # when it last changed (idle stop of the agent counts from there).
    agent_state = models.CharField(
        max_length=16, choices=AgentState.choices, default=AgentState.STOPPED
    )
    agent_state_at = models.DateTimeField(null=True, blank=True)
    last_viewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProjectQuerySet.as_manager()

    # The status may only change along these arrows (to: the statuses it may come from);
    # `projects.services.set_status` is the one writer and checks them by compare-and-set.
    # Every status may be recorded again (a new reason, a re-run step), except that nothing
    # leaves `deleting`: the delete job removes the row.
    TRANSITIONS: ClassVar[dict[str, frozenset[str]]] = {
        # the initial status, recorded once when the row is created
        Status.CREATED: frozenset({Status.CREATED}),
        # a start (user, first viewer, retry) or a start-chain step
        Status.STARTING: frozenset(
            {
                Status.CREATED,
                Status.STARTING,
                Status.RUNNING,
                Status.STOPPING,
                Status.STOPPED,
                Status.ERROR,
            }
        ),
        # both services answer (a start that ends well, or a failed step put right)
        Status.RUNNING: frozenset({Status.STARTING, Status.RUNNING, Status.ERROR}),
        # the user (or idle stop) asks to stop
        Status.STOPPING: frozenset(
            {
                Status.CREATED,
                Status.STARTING,
                Status.RUNNING,
                Status.STOPPING,
                Status.STOPPED,
                Status.ERROR,
            }
        ),
        # the stop job finished, or reconciliation found the containers gone
        Status.STOPPED: frozenset({Status.STOPPING, Status.RUNNING, Status.STOPPED}),
        # a step's last failure; a stopped or deleted project is never put in error
        Status.ERROR: frozenset({Status.CREATED, Status.STARTING, Status.RUNNING, Status.ERROR}),
        # delete is allowed from anywhere
        Status.DELETING: frozenset(Status),
    }

    class Meta:
        ordering = ["-updated_at"]
        indexes = [
            # The dashboard lists a user's projects, newest edit first.
            models.Index(fields=["owner", "-updated_at"], name="projects_owner_updated"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


def get_project_for_user(user, project_id: str, *, queryset=None) -> Project:
    """Return `user`'s project `project_id`, or raise `Http404`.

    The one ownership check every view, API route and consumer goes through: another
    user's project (or a malformed id) is indistinguishable from a missing one. A malformed
    id never reaches the database (Postgres refuses some, such as one holding NUL).
    """
    project_id = str(project_id)
    if not re.fullmatch(PROJECT_ID_PATTERN, project_id):
        raise Http404("No such project")
    qs = Project.objects.all() if queryset is None else queryset
    try:
        return qs.for_user(user).get(pk=project_id)
    except Project.DoesNotExist:
        raise Http404("No such project") from None


class ViewerQuerySet(models.QuerySet):
    def live(self, now=None) -> ViewerQuerySet:
        """Viewers whose heartbeat is fresher than `DOCE_VIEWER_TTL_SECONDS`."""
        now = now or timezone.now()
        return self.filter(
            heartbeat_at__gt=now - timedelta(seconds=settings.DOCE_VIEWER_TTL_SECONDS)
        )


class Viewer(models.Model):
    """An open workspace WebSocket on a project, in any web process.

    Written on connect, refreshed by a heartbeat, deleted on disconnect; a crashed web
    process's rows simply go stale. A project with no live viewer is idle.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="viewers")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    channel_name = models.CharField(max_length=200, unique=True)
    connected_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField()

    objects = ViewerQuerySet.as_manager()

    class Meta:
        indexes = [
            # Idle stop asks "which projects have a fresh heartbeat".
            models.Index(fields=["project", "heartbeat_at"], name="projects_viewer_live"),
        ]

    def __str__(self) -> str:
        return f"{self.user} viewing {self.project_id}"


class PreviewEntry(models.Model):
    """A used preview entry token (`projects.preview_access`): a token's id is stored when it
    is redeemed, so a replayed token is refused. Rows older than a token's lifetime are
    pruned by the worker's housekeeping."""

    token_id = models.CharField(max_length=64, unique=True)
    used_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"preview entry {self.token_id}"


class PoolEntryQuerySet(models.QuerySet):
    def live(self) -> PoolEntryQuerySet:
        """Entries that are or will be claimable (not being discarded)."""
        return self.exclude(state=PoolEntry.State.DISCARDING)


class PoolEntry(StackFiles):
    """A warm stack: started ahead of time on the site template (preview compiled, agent
    answering), owned by nobody, waiting for the next create to claim it
    (`projects.pool`). Its id is its stack name.

    It holds no user data and no provider settings: its agent's config names no provider,
    no model and no gateway token; the claiming project gets those. `fingerprint` is the
    template and images it was started from (`pool.current_fingerprint`): an entry whose
    fingerprint is not the current one is discarded, never claimed.
    """

    class State(models.TextChoices):
        STARTING = "starting", "Starting"
        READY = "ready", "Ready"
        DISCARDING = "discarding", "Discarding"

    id = models.CharField(
        primary_key=True, max_length=PROJECT_ID_LENGTH, default=new_project_id, editable=False
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.STARTING)
    fingerprint = models.CharField(max_length=64)
    # The `pool.fill` job building it: an entry still `starting` while that job no longer
    # runs was abandoned (a worker crashed mid-refill) and is discarded by `pool.maintain`.
    job_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    objects = PoolEntryQuerySet.as_manager()

    class Meta:
        verbose_name = "warm pool entry"
        verbose_name_plural = "warm pool"
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"pool entry {self.id} ({self.state})"
