"""Periodic housekeeping run by workers: `register_periodic(name, every_seconds, fn)`.

Every worker process checks the registered tasks about once a second; a `PeriodicRun` row
per task, advanced by compare-and-set, makes one worker (of however many) run each task
once per interval. A task runs in the worker's housekeeping thread, never in a job thread;
an exception is logged and stored on its `PeriodicRun` row, and the task runs again next
interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import structlog
from django.db import IntegrityError, transaction
from django.utils import timezone

from doce.redact import redact_text
from jobqueue.models import PeriodicRun

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PeriodicTask:
    name: str
    every_seconds: float
    fn: Callable[[], object]


_TASKS: dict[str, PeriodicTask] = {}


def register_periodic(name: str, every_seconds: float, fn: Callable[[], object]) -> None:
    """Run `fn()` about every `every_seconds` seconds in one worker of the deployment.

    Call it at import time of an app's `jobs.py` (or in `AppConfig.ready`). `name` (≤100
    chars) identifies the task across processes; registering a name again replaces it.
    """
    if not name or len(name) > 100:
        raise ValueError("periodic task name must be 1..100 characters")
    if every_seconds <= 0:
        raise ValueError("every_seconds must be positive")
    _TASKS[name] = PeriodicTask(name, float(every_seconds), fn)


def unregister_periodic(name: str) -> None:
    _TASKS.pop(name, None)


def registered_periodic() -> list[PeriodicTask]:
    return list(_TASKS.values())


def run_due_tasks() -> list[str]:
    """Run each registered task whose interval has passed (claimed across workers).

    Returns the names of the tasks this call ran.
    """
    ran = []
    for task in list(_TASKS.values()):
        if _claim_run(task):
            _run(task)
            ran.append(task.name)
    return ran


def _claim_run(task: PeriodicTask) -> bool:
    now = timezone.now()
    due_before = now - timedelta(seconds=task.every_seconds)
    claimed = PeriodicRun.objects.filter(name=task.name, last_run_at__lte=due_before).update(
        last_run_at=now
    )
    if claimed:
        return True
    if PeriodicRun.objects.filter(name=task.name).exists():
        return False
    try:
        with transaction.atomic():
            PeriodicRun.objects.create(name=task.name, last_run_at=now)
    except IntegrityError:
        return False  # another worker created it first and runs it
    return True


def _run(task: PeriodicTask) -> None:
    started = time.monotonic()
    error = ""
    try:
        task.fn()
    except Exception as exc:
        error = redact_text(f"{exc.__class__.__name__}: {exc}")[:2000]
        log.exception("queue.periodic_failed", task=task.name)
    PeriodicRun.objects.filter(name=task.name).update(
        last_duration_s=time.monotonic() - started, last_error=error
    )
