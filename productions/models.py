"""A project's production: its releases (immutable builds named by their content hash), the
production state (which release is live, what the last deploy step did) and custom domains.

Files: `<DOCE_DATA_DIR>/projects/<id>/releases/<hash>/` holds a release's build output;
`releases/current` is a symlink to the live one (for operators and backups: the edge serves
the release directory it was given, never the symlink).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.http import Http404

from projects.models import Project

# A release id: the SHA-256 (hex) of its build output (`productions.hashing.content_hash`).
RELEASE_ID_PATTERN = r"[0-9a-f]{64}"
# Short form shown to users and used in container names.
SHORT_ID_LENGTH = 12


def production_key(project_id: str) -> str:
    """`production:<project id>`: the queue serial key (and outbox topic) of a project's
    production jobs, so chatting and previewing go on while a build runs."""
    return f"production:{project_id}"


def releases_dir(project: Project) -> Path:
    """`<project root>/releases`: one folder per release, the `current` symlink to the live
    one and the `_assets` pool (release ids are hex digests, so neither name is a release's)."""
    return project.root_dir / "releases"


def current_dir(project: Project) -> Path:
    """`releases/current`: the symlink to the live release's folder. A static site's route
    serves this path, so a switch is the symlink's atomic rename, not an edge reload."""
    return releases_dir(project) / "current"


def asset_pool_dir(project: Project) -> Path:
    """`releases/_assets`: hard links to the hashed assets of every retained release
    (`productions.releases.pool_assets`), served for asset paths the live one lacks."""
    return releases_dir(project) / "_assets"


class IllegalProductionTransition(Exception):
    """A production status change the table does not allow (or another writer was first).

    `current` is the status found in the database, `to` the one asked for.
    """

    def __init__(self, project_id: str, current: str, to: str) -> None:
        super().__init__(f"Production of {project_id} cannot go from {current!r} to {to!r}.")
        self.project_id = project_id
        self.current = str(current)
        self.to = str(to)


class Release(models.Model):
    """One immutable build of a project's site.

    `release_id` is the SHA-256 of the build output (sorted relative paths and bytes), so two
    builds with the same output are the same release. `kind`: `static` (the edge serves the
    directory) or `server` (a container runs `node dist/server/entry.mjs`). `commit`: the git
    commit of the site it was built from. `size_bytes`: the output's size on disk.
    `state`: `ready` (on disk, can be activated) or `pruned` (retention removed its files).
    """

    class Kind(models.TextChoices):
        STATIC = "static", "Static"
        SERVER = "server", "Server"

    class State(models.TextChoices):
        READY = "ready", "Ready"
        PRUNED = "pruned", "Pruned"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="releases")
    release_id = models.CharField(max_length=64)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    commit = models.CharField(max_length=40)
    # `git diff --shortstat` from the release live when it was built (computed at build time:
    # pages never run git on a repository the agent can write).
    diff_stat = models.CharField(max_length=200, blank=True, default="")
    size_bytes = models.BigIntegerField(default=0)
    deployed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    build_log = models.TextField(blank=True, default="")
    state = models.CharField(max_length=8, choices=State.choices, default=State.READY)
    # Host port of a server release's container while it runs (NULL otherwise).
    port = models.PositiveIntegerField(null=True, blank=True, unique=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "release_id"], name="release_per_project"),
        ]

    def __str__(self) -> str:
        return f"{self.short_id} ({self.kind}) of {self.project_id}"

    @property
    def short_id(self) -> str:
        return self.release_id[:SHORT_ID_LENGTH]

    @property
    def directory(self) -> Path:
        """`<project root>/releases/<release id>`: the build output."""
        return releases_dir(self.project) / self.release_id

    @property
    def container_name(self) -> str:
        """`doce_<project id>_prod_<short id>`: a server release's container."""
        return f"doce_{self.project_id}_prod_{self.short_id}"


class Production(models.Model):
    """A project's production state (one row per project that ever deployed).

    `live_release` is the release the edge serves (NULL: nothing is served). `target_release`
    is the one a running deploy or activation is bringing up (NULL when none): reconciliation
    uses both to converge after a crash. `status` moves only along `TRANSITIONS`, through
    `productions.services.set_production_status`.
    """

    class Status(models.TextChoices):
        NONE = "none", "Not deployed"
        QUEUED = "queued", "Queued"
        BUILDING = "building", "Building"
        STARTING = "starting", "Starting"
        LIVE = "live", "Live"
        FAILED = "failed", "Failed"
        STOPPED = "stopped", "Stopped"

    project = models.OneToOneField(
        Project, primary_key=True, on_delete=models.CASCADE, related_name="production"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.NONE)
    live_release = models.ForeignKey(
        Release, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    target_release = models.ForeignKey(
        Release, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # What the last step that failed said (with the build log's tail for a build); or a note
    # ("nothing changed since …"). Cleared by the next successful switch.
    last_error = models.TextField(blank=True, default="")
    # The log of the latest build, appended while it runs.
    build_log = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    # to: the statuses it may come from. Any status may be recorded again.
    TRANSITIONS: ClassVar[dict[str, frozenset[str]]] = {
        Status.NONE: frozenset({Status.NONE}),
        # a deploy or an activation was asked for
        Status.QUEUED: frozenset(
            {Status.NONE, Status.QUEUED, Status.LIVE, Status.FAILED, Status.STOPPED}
        ),
        Status.BUILDING: frozenset({Status.QUEUED, Status.BUILDING}),
        # a server release's container is starting / being waited for
        Status.STARTING: frozenset({Status.QUEUED, Status.BUILDING, Status.STARTING}),
        # the switch happened (or reconciliation found the live release serving)
        Status.LIVE: frozenset(
            {Status.QUEUED, Status.BUILDING, Status.STARTING, Status.LIVE, Status.FAILED}
        ),
        Status.FAILED: frozenset(
            {Status.QUEUED, Status.BUILDING, Status.STARTING, Status.LIVE, Status.FAILED}
        ),
        # stop is allowed from anywhere
        Status.STOPPED: frozenset(Status),
    }
    # A deploy or activation is on its way: another one is refused (409) meanwhile.
    ACTIVE: ClassVar[frozenset[str]] = frozenset({Status.QUEUED, Status.BUILDING, Status.STARTING})

    def __str__(self) -> str:
        return f"production of {self.project_id}: {self.status}"


# A domain name: labels of letters, digits and inner hyphens, a dot-separated name of at
# least two labels, 253 characters at most, the last label not all digits (no IP addresses).
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
DOMAIN_PATTERN = re.compile(rf"^(?:{_LABEL}\.)+(?!\d+$){_LABEL}$")


class Domain(models.Model):
    """A custom domain attached to a project's site (unique across the installation)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="domains")
    name = models.CharField(max_length=253, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


def get_release_for_project(project: Project, release_id: str) -> Release:
    """`project`'s release `release_id` (full id or its 12-character short form), or
    `Http404`: a release of another project is indistinguishable from a missing one."""
    release_id = str(release_id)
    if not re.fullmatch(r"[0-9a-f]{12}|[0-9a-f]{64}", release_id):
        raise Http404("No such release")
    found = list(
        Release.objects.filter(project=project, release_id__startswith=release_id)
        .exclude(state=Release.State.PRUNED)
        .order_by("-created_at")[:2]
    )
    if len(found) != 1:
        raise Http404("No such release")
    return found[0]
