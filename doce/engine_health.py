"""The Docker Engine's health as workers record it, for web processes to read.

A worker pings the Engine every `DOCE_ENGINE_HEALTH_SECONDS` (a periodic task registered by
the projects app) and stores the answer in `EngineHealth`, with the start of the current
outage; a job that finds the Engine unreachable records that at once. The web process reads
the record: rendering a page or answering `/healthz` never waits on the Engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from doce.docker.engine import ENGINE_UNREACHABLE, EngineStatus, engine_status
from doce.models import EngineHealth

# A record older than this many check intervals says nothing: no worker is checking.
FRESH_FOR_INTERVALS = 3

ENGINE_UNCHECKED = (
    "No worker has checked the Docker Engine recently: start a worker (`manage.py "
    "run_worker`, or `make run`)."
)


@dataclass(frozen=True)
class RecordedEngine:
    """What the newest record says.

    `state`: `reachable`, `unreachable`, or `unknown` (no fresh record); `reachable` is
    True only for `reachable`; `version` is the Engine's version when reachable; `error` a
    sentence for users otherwise; `age_s` the record's age in seconds (None without one).
    """

    state: str
    version: str = ""
    error: str = ""
    age_s: float | None = None

    @property
    def reachable(self) -> bool:
        return self.state == "reachable"


def record(status: EngineStatus, now: datetime | None = None) -> bool:
    """Store `status` as the Engine's current health. Returns True when it ends an outage
    (the record said unreachable, the Engine answers now)."""
    now = now or timezone.now()
    with transaction.atomic():
        row, _ = EngineHealth.objects.select_for_update().get_or_create(
            pk=1, defaults={"reachable": True, "checked_at": now}
        )
        came_back = status.reachable and row.unreachable_since is not None
        if status.reachable:
            row.unreachable_since = None
        elif row.unreachable_since is None:
            row.unreachable_since = now
        row.reachable = status.reachable
        row.version = status.version[:64] if status.reachable else ""
        row.checked_at = now
        row.save()
    return came_back


def record_engine_health() -> bool:
    """Ping the Engine (at most 3 s) and record the answer. Returns True when that ends an
    outage (see `record`)."""
    return record(engine_status())


def outage_seconds(now: datetime | None = None) -> float:
    """How long the recorded Engine outage has lasted (seconds; 0 when there is none)."""
    since = EngineHealth.objects.filter(pk=1).values_list("unreachable_since", flat=True).first()
    if since is None:
        return 0.0
    return max(0.0, ((now or timezone.now()) - since).total_seconds())


def record_engine_unreachable() -> None:
    """Record that a job just failed to reach the Engine."""
    record(EngineStatus(reachable=False, error=ENGINE_UNREACHABLE))


def recorded_engine(now: datetime | None = None) -> RecordedEngine:
    """The recorded Engine health (one indexed read; never calls the Engine)."""
    now = now or timezone.now()
    try:
        row = EngineHealth.objects.filter(pk=1).first()
    except DatabaseError:
        row = None
    if row is None:
        return RecordedEngine("unknown", error=ENGINE_UNCHECKED)
    age = max(0.0, (now - row.checked_at).total_seconds())
    fresh_for = timedelta(seconds=FRESH_FOR_INTERVALS * settings.DOCE_ENGINE_HEALTH_SECONDS)
    if age > fresh_for.total_seconds():
        return RecordedEngine("unknown", error=ENGINE_UNCHECKED, age_s=round(age, 1))
    if row.reachable:
        return RecordedEngine("reachable", version=row.version, age_s=round(age, 1))
    return RecordedEngine("unreachable", error=ENGINE_UNREACHABLE, age_s=round(age, 1))
