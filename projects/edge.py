"""The projects app's side of the edge (`doce.edge`): which previews Caddy routes, and when
it must be told.

- `preview_routes()`: one `PreviewRoute` per project whose preview may be up (`starting` or
  `running`, with a port), read from the database: the truth the edge is derived from.
- `request_sync()`: call after anything that changes routing (a status write, a port
  change). After the transaction commits, this process renders and loads the configuration
  itself (`doce.edge.sync.sync`, serialized across processes by a file lock, so the last
  load is always of the newest state): a route answers within milliseconds, not after a
  queue hop. When that fails, one deduplicated `edge.sync` job is queued and the worker
  retries it. Without a running edge (no admin socket: tests, `run_worker` alone) nothing
  is done.
- the worker also syncs periodically (`projects.apps`), so a restarted Caddy or doce
  converges by itself.

`productions` adds its sites with `doce.edge.routes.register_routes` the same way.
"""

from __future__ import annotations

import os

import structlog
from django.db import transaction

from doce.edge import sync as edge_sync
from doce.edge.admin import EdgeRejected, EdgeUnavailable
from doce.edge.config import PreviewRoute
from jobqueue import JobContext, enqueue, job_handler
from projects.models import Project

log = structlog.get_logger(__name__)

SYNC = "edge.sync"
ROUTED_STATUSES = (Project.Status.STARTING, Project.Status.RUNNING)


def preview_routes() -> list[PreviewRoute]:
    """The previews the edge routes: projects starting or running that have a port."""
    rows = Project.objects.filter(
        status__in=ROUTED_STATUSES, preview_port__isnull=False
    ).values_list("id", "preview_port")
    return [
        PreviewRoute(project_id=pid, port=port) for pid, port in rows.iterator() if port is not None
    ]


def edge_running() -> bool:
    """True when an edge's admin socket exists for this installation's data directory."""
    return os.path.exists(edge_sync.admin_socket())


def sync_now() -> edge_sync.SyncResult:
    """Render from the database and load into Caddy (under the machine-wide lock). Raises
    `EdgeUnavailable`/`EdgeRejected` (doce.edge.admin)."""
    return edge_sync.sync()


def _sync_or_queue() -> None:
    if not edge_running():
        return
    try:
        sync_now()
    except (EdgeUnavailable, EdgeRejected) as exc:
        log.warning("edge.sync_failed", error=str(exc))
        enqueue(SYNC, dedupe_key=SYNC)


def request_sync() -> None:
    """Bring the edge up to date once the current transaction commits (at once outside
    one). Never raises for an edge that is down: the periodic sync converges later."""
    transaction.on_commit(_sync_or_queue)


@job_handler(SYNC, max_attempts=5)
def sync_job(ctx: JobContext) -> None:
    """`edge.sync`: load the configuration the database calls for. An edge that is not
    running is not an error (serve loads the configuration when it starts Caddy); a
    refused configuration fails the attempt (retried)."""
    if not edge_running():
        return
    try:
        result = sync_now()
    except EdgeUnavailable as exc:
        log.info("edge.sync_skipped", reason=str(exc))
        return
    ctx.log(f"loaded {result.previews} preview route(s), {result.sites} site route(s)")


def periodic_sync() -> dict:
    """The worker's periodic sync (a restarted Caddy converges without a trigger)."""
    if not edge_running():
        return {"synced": False}
    try:
        result = sync_now()
    except EdgeUnavailable:
        return {"synced": False}
    return {"synced": True, "previews": result.previews}
