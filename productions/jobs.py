"""Job handlers of production deploys. Serial key `production:<project id>` (so chatting
and previewing go on during a build); one unfinished job per step (dedupe `<type>:<id>`).

    production.build → production.start → production.waitReady → production.promote
                     (server releases only: start, waitReady)     → production.retire (later)
    production.activate → (production.start → production.waitReady →) production.promote
    production.stop

Nothing before the switch touches what is live: a failed build, a release that does not
answer, a timeout all leave the live release serving, and the production says what failed
(`last_error`, with the build log's tail for a build). The switch (`promote`) records the
new live release (the edge renders its routes from it and loads them in one config load),
then moves the `current` symlink by atomic rename. `retire` runs after the drain period:
it stops the containers of releases that are no longer live and applies retention.
"""

from __future__ import annotations

import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from pathlib import Path

import structlog
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from pydantic import BaseModel, Field

from doce.docker.failures import FailureKind, StackError
from doce.docker.services import find_services, remove_service, start_service
from jobqueue import JobContext, PermanentJobError, is_permanent, job_handler
from productions import services
from productions.build import (
    LABEL_PRODUCTION,
    LABEL_RELEASE,
    BuildError,
    BuildLog,
    builds_dir,
    diff_stat,
    export_commit,
    output_kind,
    provide_dependencies,
    run_builder,
    snapshot_commit,
    stage_output,
)
from productions.models import (
    IllegalProductionTransition,
    Production,
    Release,
    asset_pool_dir,
    releases_dir,
)
from productions.ports import allocate_release_port
from productions.releases import choose_pruned, pool_assets, prune_pool
from projects.jobs import holds_while_docker_is_down, user_message
from projects.models import Project

log = structlog.get_logger(__name__)

S = Production.Status
READY_POLL_SECONDS = 1.0
PROBE_TIMEOUT_S = 5.0
CONTAINER_PORT = 4321
RELEASE_ID = r"^[0-9a-f]{64}$"


class ProductionPayload(BaseModel):
    project_id: str = Field(pattern=r"^[0-9a-f]{16}$")


class BuildPayload(ProductionPayload):
    # Who asked for the deploy (recorded on the release); None for the system.
    user_id: int | None = None


class ReleasePayload(ProductionPayload):
    release_id: str = Field(pattern=RELEASE_ID)


class WaitPayload(ReleasePayload):
    # Epoch seconds when the release's container was started; the wait is bounded from there.
    started_at: float


# --- helpers ---------------------------------------------------------------------------------


def _load(ctx: JobContext) -> tuple[Project, Production] | None:
    """The payload's project and production; None (the job ends) when the project is gone
    or being deleted."""
    structlog.contextvars.bind_contextvars(project_id=ctx.payload.project_id)
    project = Project.objects.filter(pk=ctx.payload.project_id).first()
    if project is None or project.status == Project.Status.DELETING:
        ctx.log("skipped: the project is gone or being deleted")
        return None
    return project, services.production_of(project)


def _release(project: Project, release_id: str) -> Release:
    release = Release.objects.filter(project=project, release_id=release_id).first()
    if release is None or release.state == Release.State.PRUNED:
        raise PermanentJobError(f"Release {release_id[:12]} is no longer available.")
    return release


def _move(ctx: JobContext, production: Production, status: str, **fields) -> bool:
    """Compare-and-set `status`; False (and logged) when a stop or another writer came
    first: the chain ends there."""
    try:
        services.set_production_status(production, status, from_=Production.ACTIVE, **fields)
    except IllegalProductionTransition as exc:
        ctx.log(f"skipped: the production is {exc.current} now")
        return False
    return True


@contextmanager
def fails_production(
    ctx: JobContext, production: Production, build_log: BuildLog | None = None
) -> Iterator[None]:
    """On the step's last failure, record `failed` with a message (and the build log's tail);
    the live release, if any, keeps serving. Earlier failures are left to the queue."""
    try:
        yield
    except Exception as exc:
        if is_permanent(exc) or ctx.attempt >= ctx.job.max_attempts:
            message = user_message(exc) if not isinstance(exc, BuildError) else str(exc)
            tail = getattr(exc, "log_tail", "") or (build_log.tail() if build_log else "")
            if tail:
                message = f"{message}\n\n{tail}"
            if production.live_release_id:
                message += "\n\nThe live release still serves the site."
            with suppress(IllegalProductionTransition):
                services.set_production_status(
                    production,
                    S.FAILED,
                    error=message,
                    from_=Production.ACTIVE,
                    target_release=None,
                    **({"build_log": build_log.text()} if build_log else {}),
                )
        raise


def _next(ctx: JobContext, type: str, payload: dict, **kwargs) -> None:
    ctx.enqueue(type, payload, dedupe_key=f"{type}:{ctx.payload.project_id}", **kwargs)


def _after_release(ctx: JobContext, release: Release) -> None:
    """Queue what makes `release` live: its container first for a server release."""
    payload = {"project_id": release.project_id, "release_id": release.release_id}
    _next(ctx, services.START if release.kind == Release.Kind.SERVER else services.PROMOTE, payload)


# --- build -----------------------------------------------------------------------------------


@job_handler(services.BUILD, payload=BuildPayload, max_attempts=2)
def build(ctx: JobContext) -> None:
    """Snapshot the site in git, build that commit in a one-off builder container, and store
    the output as a release named by its content hash; then queue its start or promotion.
    Output identical to the live release ends the chain ("nothing changed")."""
    loaded = _load(ctx)
    if loaded is None:
        return
    project, production = loaded
    if not _move(ctx, production, S.BUILDING, build_log=""):
        return
    work = builds_dir(project) / f"job-{ctx.job.pk}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    build_log = BuildLog(project)
    try:
        with fails_production(ctx, production, build_log), holds_while_docker_is_down(ctx, None):
            commit = snapshot_commit(project.site_dir)
            ctx.log("building", commit=commit)
            export_commit(project.site_dir, commit, work)
            how = provide_dependencies(project.site_dir, work)
            ctx.throw_if_cancel_requested()
            try:
                run_builder(project, work, build_log, install=not how)
            except StackError as exc:
                if exc.failure.kind == FailureKind.OTHER:
                    raise BuildError(
                        "The build failed. The end of its log:", build_log.tail()
                    ) from None
                raise
            ctx.throw_if_cancel_requested()
            kind = output_kind(work)
            folder, digest, size = stage_output(work, kind)
            release = _store_release(ctx, project, production, folder, digest, kind, commit, size)
            Production.objects.filter(pk=production.pk).update(build_log=build_log.text())
            if release is not None:
                Release.objects.filter(pk=release.pk, build_log="").update(
                    build_log=build_log.text()
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if release is not None:
        _after_release(ctx, release)


def _store_release(
    ctx: JobContext,
    project: Project,
    production: Production,
    folder: Path,
    digest: str,
    kind: str,
    commit: str,
    size: int,
) -> Release | None:
    """Move the output into `releases/<digest>` (unless that release exists) and record the
    release; None when it is the live one already (nothing to switch)."""
    existing = Release.objects.filter(project=project, release_id=digest).first()
    production.refresh_from_db()
    if existing is not None and existing.pk == production.live_release_id:
        note = f"Nothing changed since release {existing.short_id}: it is live already."
        ctx.log(note)
        _move(ctx, production, S.LIVE, error=note, target_release=None)
        return None
    target = releases_dir(project) / digest
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.rename(folder, target)  # same file system: atomic, never half a release
    user = get_user_model().objects.filter(pk=ctx.payload.user_id).first()
    base = production.live_release.commit if production.live_release else ""
    with transaction.atomic():
        if existing is None:
            release = Release.objects.create(
                project=project,
                release_id=digest,
                kind=kind,
                commit=commit,
                diff_stat=diff_stat(project.site_dir, base, commit)[:200],
                size_bytes=size,
                deployed_by=user,
            )
            ctx.log("release stored", release=release.short_id, kind=kind, bytes=size)
        else:
            release = existing
            Release.objects.filter(pk=release.pk).update(state=Release.State.READY)
            ctx.log("same output as an earlier release: activating it", release=release.short_id)
        Production.objects.filter(pk=production.pk).update(target_release=release)
    return release


# --- start, wait, promote ----------------------------------------------------------------------


@job_handler(services.ACTIVATE, payload=ReleasePayload)
def activate(ctx: JobContext) -> None:
    """Make a retained release live again: the same steps as a deploy after its build."""
    loaded = _load(ctx)
    if loaded is None:
        return
    project, production = loaded
    with fails_production(ctx, production):
        release = _release(project, ctx.payload.release_id)
        if not release.directory.is_dir():
            raise PermanentJobError(f"Release {release.short_id}'s files are missing.")
    if production.status not in Production.ACTIVE:
        ctx.log(f"skipped: the production is {production.status} now")
        return
    _after_release(ctx, release)


@job_handler(services.START, payload=ReleasePayload)
def start(ctx: JobContext) -> None:
    """Start a server release's container next to the live one (loopback port, limits,
    restart policy, labels), then wait for it to answer."""
    loaded = _load(ctx)
    if loaded is None:
        return
    project, production = loaded
    with fails_production(ctx, production), holds_while_docker_is_down(ctx, None):
        release = _release(project, ctx.payload.release_id)
        if not _move(ctx, production, S.STARTING, target_release=release):
            return
        port = run_release_container(project, release)
    ctx.log("release container started", release=release.short_id, port=port)
    _next(
        ctx,
        services.WAIT_READY,
        {"project_id": project.id, "release_id": release.release_id, "started_at": time.time()},
    )


def run_release_container(project: Project, release: Release) -> int:
    """Start a server release's container (`doce_<id>_prod_<short id>`, preview image,
    `node dist/server/entry.mjs`, the release folder mounted read-only) on its loopback port
    (allocated when it has none); returns the port. Raises `StackError`."""
    port = release.port or allocate_release_port(release)
    start_service(
        release.container_name,
        settings.DOCE_PREVIEW_IMAGE,
        ["node", "dist/server/entry.mjs"],
        volumes={str(release.directory): {"bind": "/app", "mode": "ro"}},
        environment={
            "HOST": "0.0.0.0",  # noqa: S104 (inside the container)
            "PORT": str(CONTAINER_PORT),
            "NODE_ENV": "production",
        },
        working_dir="/app",
        host_port=port,
        container_port=CONTAINER_PORT,
        labels={LABEL_PRODUCTION: project.id, LABEL_RELEASE: release.release_id},
        cpus=settings.DOCE_PROD_CPUS,
        memory_mb=settings.DOCE_PROD_MEMORY_MB,
    )
    return port


def answers(port: int, *, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when `GET http://127.0.0.1:<port>/` answers 2xx or 3xx (redirects not followed);
    a 4xx/5xx answer or a connection error is not ready."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", method="GET")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            return 200 <= response.status < 400
    except urllib.error.HTTPError as exc:
        return 300 <= exc.code < 400
    except (OSError, ValueError):
        return False


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


@job_handler(services.WAIT_READY, payload=WaitPayload, max_attempts=3)
def wait_ready(ctx: JobContext) -> None:
    """Poll the new release once a second until it answers 2xx/3xx, then promote it; past
    `DOCE_PROD_READY_TIMEOUT_SECONDS` its container is removed and the production fails
    (the live release keeps serving)."""
    loaded = _load(ctx)
    if loaded is None:
        return
    project, production = loaded
    if production.status not in Production.ACTIVE:
        ctx.log(f"skipped: the production is {production.status} now")
        return
    with fails_production(ctx, production):
        release = _release(project, ctx.payload.release_id)
        if not (release.port and answers(release.port)):
            waited = time.time() - ctx.payload.started_at
            if waited <= settings.DOCE_PROD_READY_TIMEOUT_SECONDS:
                ctx.reschedule(READY_POLL_SECONDS)
            with suppress(StackError):
                remove_service(release.container_name, stop_timeout=2)
            raise PermanentJobError(
                f"Release {release.short_id} did not answer GET / with a success within "
                f"{int(waited)} s. Its container's output is in the project's Logs."
            )
    _next(ctx, services.PROMOTE, {"project_id": project.id, "release_id": release.release_id})


@job_handler(services.PROMOTE, payload=ReleasePayload)
def promote(ctx: JobContext) -> None:
    """The switch: record the release as live (the edge loads the new routes in one config
    load), move the `current` symlink by atomic rename, and queue `production.retire` after
    the drain period."""
    loaded = _load(ctx)
    if loaded is None:
        return
    project, production = loaded
    with fails_production(ctx, production):
        release = _release(project, ctx.payload.release_id)
        if not release.directory.is_dir():
            raise PermanentJobError(f"Release {release.short_id}'s files are missing.")
        previous = production.live_release
        # A re-run after a crash right after the switch finds the switch done: it goes on.
        switched = production.status == S.LIVE and production.live_release_id == release.pk
        if not switched and not _move(
            ctx, production, S.LIVE, error="", live_release=release, target_release=None
        ):
            return
    switch_to(project, release, previous)
    ctx.log(
        "release is live",
        release=release.short_id,
        previous=previous.short_id if previous else None,
    )
    _next(
        ctx,
        services.RETIRE,
        {"project_id": project.id},
        run_at=timezone.now() + timedelta(seconds=settings.DOCE_PROD_DRAIN_SECONDS),
    )


def switch_to(project: Project, release: Release, previous: Release | None) -> None:
    """Make `release` the one the edge serves. A static release: its hashed assets (and the
    previous release's) join the asset pool, then `current` moves, which is the switch (the
    route serves `current`; the edge sync after it changes nothing unless the route does:
    a first deploy or a change of kind). A server release: the edge sync points the route
    at its container first, then `current` follows, so a static route never serves a server
    release's folder."""
    if release.kind == Release.Kind.STATIC:
        pool = asset_pool_dir(project)
        for shown in (previous, release):
            if shown is not None and shown.kind == Release.Kind.STATIC:
                pool_assets(shown.directory, pool)
        point_current(project, release)
        services.request_edge_sync()
    else:
        services.request_edge_sync()
        point_current(project, release)


def point_current(project: Project, release: Release) -> None:
    """Point `releases/current` at the release's folder by atomic rename of a new symlink
    (relative target, so a moved data directory stays valid)."""
    folder = releases_dir(project)
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".current-{os.getpid()}-{time.monotonic_ns()}"
    os.symlink(release.release_id, temporary)
    os.replace(temporary, folder / "current")


def current_target(project: Project) -> str:
    """The release id `releases/current` points at ("" when there is none)."""
    with suppress(OSError):
        return os.path.basename(os.readlink(releases_dir(project) / "current"))
    return ""


# --- retire, retention, stop -----------------------------------------------------------------


@job_handler(services.RETIRE, payload=ProductionPayload)
def retire(ctx: JobContext) -> None:
    """After the drain period: stop the containers of releases that are neither live nor
    being brought up, then apply retention."""
    loaded = _load(ctx)
    if loaded is None:
        return
    project, production = loaded
    with holds_while_docker_is_down(ctx, None):
        stopped = stop_idle_containers(project, production)
        pruned = apply_retention(project, production)
    ctx.log("retired", stopped=stopped, pruned=pruned)


def _protected(production: Production) -> set[str]:
    ids = set(
        Release.objects.filter(
            pk__in=[p for p in (production.live_release_id, production.target_release_id) if p]
        ).values_list("release_id", flat=True)
    )
    return ids


def stop_idle_containers(project: Project, production: Production) -> list[str]:
    """Remove the release containers of `project` other than the live and target ones (and
    free their ports). Returns the removed container names. Raises `StackError`."""
    production.refresh_from_db()
    keep = _protected(production)
    removed = []
    for container in find_services({LABEL_PRODUCTION: project.id, LABEL_RELEASE: ""}):
        release_id = container.labels.get(LABEL_RELEASE, "")
        if release_id in keep:
            continue
        remove_service(container.name)
        removed.append(container.name)
        Release.objects.filter(project=project, release_id=release_id).update(port=None)
    return removed


def apply_retention(project: Project, production: Production) -> list[str]:
    """Prune all but the newest `DOCE_RELEASES_KEPT` releases, never the live or target one:
    their folder and container go, the row stays (state `pruned`). Returns the pruned ids."""
    production.refresh_from_db()
    retained = list(
        Release.objects.filter(project=project)
        .exclude(state=Release.State.PRUNED)
        .order_by("-created_at", "-id")
    )
    pruned = choose_pruned(retained, settings.DOCE_RELEASES_KEPT, protected=_protected(production))
    for release in pruned:
        remove_service(release.container_name)
        Release.objects.filter(pk=release.pk).update(state=Release.State.PRUNED, port=None)
        shutil.rmtree(release.directory, ignore_errors=True)
    if pruned:
        gone = {r.pk for r in pruned}
        prune_pool(asset_pool_dir(project), [r.directory for r in retained if r.pk not in gone])
    return [r.release_id for r in pruned]


@job_handler(services.STOP, payload=ProductionPayload)
def stop(ctx: JobContext) -> None:
    """Stop serving: no live release (the edge drops the route), every release container
    and a builder removed. Releases stay on disk."""
    project = Project.objects.filter(pk=ctx.payload.project_id).first()
    if project is None:
        return
    production = services.production_of(project)
    with suppress(IllegalProductionTransition):
        services.set_production_status(
            production,
            S.STOPPED,
            from_={S.STOPPED},
            live_release=None,
            target_release=None,
        )
    services.request_edge_sync()
    with holds_while_docker_is_down(ctx, None):
        removed = remove_production_containers(project.id)
    Release.objects.filter(project=project).update(port=None)
    ctx.log("production stopped", containers=len(removed))


def remove_production_containers(project_id: str) -> list[str]:
    """Remove every container of a project's production (releases and builder). Raises
    `StackError(ENGINE_UNREACHABLE)`."""
    removed = []
    for container in find_services({LABEL_PRODUCTION: project_id}):
        remove_service(container.name, stop_timeout=2)
        removed.append(container.name)
    return removed
