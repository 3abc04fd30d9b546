"""Production lifecycle outside the deploy chain: removal with its project, and
reconciliation after a crash.

`projects` never imports `productions`: the project delete job deletes the `Project` row,
and the `pre_delete` signal connected in `ProductionsConfig.ready` removes the production's
containers first (a Docker outage raises, so the delete job is held and runs again). The
release folders live under the project's folder, which the delete job removes; release,
production and domain rows go with the project (cascade); the edge drops the routes when it
syncs after the commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog
from django.db import transaction

from doce.docker.failures import StackError
from doce.docker.services import find_services, remove_service
from jobqueue.models import Job, JobState
from productions import services
from productions.build import LABEL_PRODUCTION
from productions.jobs import (
    current_target,
    point_current,
    remove_production_containers,
    run_release_container,
)
from productions.models import IllegalProductionTransition, Production, production_key
from projects.models import Project

log = structlog.get_logger(__name__)

INTERRUPTED = (
    "The deploy was interrupted (its worker stopped) and did not finish. Deploy again; the "
    "live release, if any, still serves the site."
)


def remove_with_project(sender, instance: Project, **kwargs) -> None:
    """`pre_delete` receiver of `Project`: cancel production jobs, remove the production's
    containers; ask the edge to sync once the delete commits. Raises `StackError` when the
    Engine is unreachable (the delete job is held and tried again). A project that never
    deployed is left alone (no Engine call)."""
    if not Production.objects.filter(pk=instance.pk).exists():
        return
    services.cancel_jobs(instance.id, include_running=True)
    remove_production_containers(instance.id)
    transaction.on_commit(services.request_edge_sync)


@dataclass
class ProductionReport:
    """What one `reconcile()` pass did (lists of project ids; `engine_error` when the Engine
    was unreachable and containers were not looked at)."""

    interrupted: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    orphans_removed: list[str] = field(default_factory=list)
    current_fixed: list[str] = field(default_factory=list)
    engine_error: str = ""


def reconcile() -> ProductionReport:
    """Converge productions after a crash (the worker runs it periodically):

    1. a production left `queued`/`building`/`starting` with no unfinished job (its worker
       died after the queue gave up on the job) is `failed` with a message; the live
       release was never touched before the switch, so it still serves;
    2. a live server release whose container is gone is started again on its port (the
       edge's route to it stays valid);
    3. `releases/current` is pointed at the live release when it points elsewhere;
    4. production containers whose project no longer exists are removed.
    """
    report = ProductionReport()
    busy = set(
        Job.objects.filter(
            serial_key__startswith="production:", state__in=[JobState.QUEUED, JobState.RUNNING]
        ).values_list("serial_key", flat=True)
    )
    for production in Production.objects.filter(status__in=Production.ACTIVE):
        if production_key(production.project_id) in busy:
            continue
        try:
            services.set_production_status(
                production,
                Production.Status.FAILED,
                error=INTERRUPTED,
                from_={production.status},
                target_release=None,
            )
        except IllegalProductionTransition:  # another writer moved it on: fine
            continue
        report.interrupted.append(production.project_id)

    live = (
        Production.objects.filter(live_release__isnull=False)
        .exclude(status=Production.Status.STOPPED)
        .select_related("live_release", "project")
    )
    for production in live:
        release = production.live_release
        assert release is not None
        if current_target(production.project) != release.release_id and release.directory.is_dir():
            point_current(production.project, release)
            report.current_fixed.append(production.project_id)

    try:
        containers = find_services({LABEL_PRODUCTION: ""})
    except StackError as exc:
        report.engine_error = exc.failure.message
        return report
    running = {c.name for c in containers if c.status == "running"}
    for production in live:
        release = production.live_release
        assert release is not None
        if release.kind != "server" or production.status in Production.ACTIVE:
            continue
        if release.container_name in running:
            continue
        if production_key(production.project_id) in busy:
            continue
        try:
            run_release_container(production.project, release)
        except StackError as exc:
            log.warning(
                "productions.restart_failed",
                project_id=production.project_id,
                error=exc.failure.kind,
            )
            continue
        report.restarted.append(production.project_id)

    existing = set(
        Project.objects.filter(
            pk__in={c.labels.get(LABEL_PRODUCTION, "") for c in containers}
        ).values_list("pk", flat=True)
    )
    for container in containers:
        owner = container.labels.get(LABEL_PRODUCTION, "")
        if owner and owner not in existing:
            try:
                remove_service(container.name, stop_timeout=2)
            except StackError as exc:
                log.warning("productions.orphan_remove_failed", error=exc.failure.kind)
                continue
            report.orphans_removed.append(owner)
    if any((report.interrupted, report.restarted, report.orphans_removed, report.current_fixed)):
        log.info("productions.reconciled", **report.__dict__)
    return report
