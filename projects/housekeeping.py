"""The projects app's periodic work, run by the worker (see `ProjectsConfig.ready`)."""

from __future__ import annotations

import structlog

from doce import engine_health
from projects import chain, pool, presence, preview_access, services
from projects.models import Project
from projects.reconcile import reconcile

log = structlog.get_logger(__name__)


def reconcile_and_restart() -> dict:
    """Compare containers with the database (`projects.reconcile.reconcile`) and queue a
    start for every project that should be running but is not. Returns the counts."""
    report = reconcile()
    restarted = 0
    for project in Project.objects.filter(pk__in=report.needs_start):
        services.enqueue_step(project, chain.ENSURE_RUNNING)
        restarted += 1
    return {
        "removed": len(report.removed),
        "marked_gone": len(report.marked_gone),
        "restarted": restarted,
    }


def stop_idle() -> dict:
    """Forget viewers whose web process died, then stop idle projects and put the agents
    of idle running projects to sleep (their previews stay up)."""
    pruned = presence.prune_stale_viewers()
    stopped = services.stop_idle_projects()
    agents = services.stop_idle_agents()
    return {"stale_viewers": pruned, "stopped": stopped, "agents_stopped": agents}


def record_engine_health() -> dict:
    """Record the Docker Engine's health (what the dashboard and /healthz show); when it
    answers again after an outage, run the Docker steps held for it at once."""
    came_back = engine_health.record_engine_health()
    resumed = services.resume_held_steps() if came_back else 0
    if came_back:
        log.info("docker.engine_back", resumed_steps=resumed)
    return {"came_back": came_back, "resumed": resumed}


def prune_entries() -> dict:
    """Forget used preview entry tokens whose signature has expired (replay is impossible)."""
    return {"pruned": preview_access.prune_entries()}


def maintain_pool() -> dict:
    """Keep the warm pool at its size with current stacks (`projects.pool.maintain`)."""
    return pool.maintain()
