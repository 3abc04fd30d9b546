"""The `worker` check of `/healthz`: is some worker alive (heartbeat fresh)?"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from jobqueue.models import Job, WorkerHeartbeat


def check_worker() -> tuple[bool, dict]:
    """(ok, details) from the freshest worker heartbeat.

    States: `alive` (a heartbeat within `DOCE_QUEUE_WORKER_STALE_SECONDS`: healthy),
    `never_started` (no worker has ever run against this database), `stopped` (the last
    workers stopped cleanly), `stale` (the newest heartbeat is too old: the worker died or
    hangs). Only `alive` is healthy: without a worker no job runs. `heartbeat_age_s` is
    the age of the newest heartbeat in seconds (null when there is none).
    """
    try:
        newest = WorkerHeartbeat.objects.order_by("-heartbeat_at").first()
        queued = Job.objects.queued().filter(run_at__lte=timezone.now()).count()
    except DatabaseError:
        return False, {"ok": False, "state": "unknown", "error": "database unreachable"}
    if newest is None:
        return False, {
            "ok": False,
            "state": "never_started",
            "heartbeat_age_s": None,
            "ready_jobs": queued,
        }
    age = round((timezone.now() - newest.heartbeat_at).total_seconds(), 1)
    stale_after = settings.DOCE_QUEUE_WORKER_STALE_SECONDS
    alive_workers = WorkerHeartbeat.objects.filter(
        stopped_at__isnull=True,
        heartbeat_at__gte=timezone.now() - timedelta(seconds=stale_after),
    ).count()
    if alive_workers:
        state = "alive"
    elif newest.stopped_at is not None:
        state = "stopped"
    else:
        state = "stale"
    ok = state == "alive"
    return ok, {
        "ok": ok,
        "state": state,
        "heartbeat_age_s": age,
        "workers": alive_workers,
        "ready_jobs": queued,
    }
