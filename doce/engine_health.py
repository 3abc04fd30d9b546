"""The Docker Engine's health as workers record it, for web processes to read.

A worker pings the Engine every `DOCE_ENGINE_HEALTH_SECONDS` (a periodic task registered by
the projects app) and stores the answer in `EngineHealth`; a job that finds the Engine
unreachable records that at once. The web process reads the record: rendering a page or
answering `/healthz` never waits on the Engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError
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


def record(status: EngineStatus, now: datetime | None = None) -> None:
    """Store `status` as the Engine's current health."""
    EngineHealth.objects.update_or_create(
        pk=1,
        defaults={
            "reachable": status.reachable,
            "version": status.version[:64] if status.reachable else "",
            "checked_at": now or timezone.now(),
        },
    )


def record_engine_health() -> EngineStatus:
    """Ping the Engine (at most 3 s) and record the answer; returns it."""
    status = engine_status()
    record(status)
    return status


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
