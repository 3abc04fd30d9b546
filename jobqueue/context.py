"""`JobContext`: what a handler receives."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import structlog
from pydantic import BaseModel

from jobqueue import services
from jobqueue.errors import JobCancelled, LeaseLost, Reschedule, WorkerShuttingDown
from jobqueue.models import Job, JobState

log = structlog.get_logger("jobqueue.handler")

_SAME: Any = object()


class JobContext:
    """The running job as its handler sees it.

    Attributes: `payload` (the validated payload model instance, or the dict when the type
    has no model), `job` (the `Job` row as claimed), `attempt` (1-based claim number),
    `worker_id`.
    """

    def __init__(self, job: Job, payload: Any, worker_id: str, stopping: threading.Event) -> None:
        self.job = job
        self.payload = payload
        self.worker_id = worker_id
        self.attempt = job.attempts
        self.follow_ups: list[Job] = []
        self._stopping = stopping
        # Set by the worker's heartbeat when the lease is gone or a cancel was requested.
        self.lease_lost = threading.Event()
        self.cancel_seen = threading.Event()

    def cancel_requested(self) -> bool:
        """True when an operator or user asked to cancel this job (reads the database)."""
        self._check_lease()
        return self.cancel_seen.is_set()

    def throw_if_cancel_requested(self) -> None:
        """A checkpoint: raise if this job must stop here, else return.

        Raises `JobCancelled` (a cancel was requested: the job ends `cancelled`),
        `LeaseLost` (force-cancelled or reclaimed: nothing more is recorded) or
        `WorkerShuttingDown` (the worker is stopping: the job goes back to `queued` without
        spending an attempt). All derive from `BaseException`, so `except Exception` in the
        handler does not swallow them. Costs one primary-key read.
        """
        self._check_lease()
        if self.cancel_seen.is_set():
            raise JobCancelled(f"job {self.job.pk} was cancelled")
        if self._stopping.is_set():
            raise WorkerShuttingDown(f"worker {self.worker_id} is shutting down")

    def _check_lease(self) -> None:
        if self.lease_lost.is_set():
            raise LeaseLost(f"job {self.job.pk} is no longer leased to {self.worker_id}")
        row = (
            Job.objects.filter(pk=self.job.pk)
            .values_list("state", "locked_by", "cancel_requested_at")
            .first()
        )
        if row is None or row[0] != JobState.RUNNING or row[1] != self.worker_id:
            self.lease_lost.set()
            raise LeaseLost(f"job {self.job.pk} is no longer leased to {self.worker_id}")
        if row[2] is not None:
            self.cancel_seen.set()

    def reschedule(self, delay_seconds: float) -> None:
        """End this run and run the job again in `delay_seconds` (polling, e.g. "not ready
        yet"): no attempt is spent, no error recorded. Raises `Reschedule`; never returns."""
        raise Reschedule(delay_seconds)

    def log(self, message: str, *, level: str = "info", **fields: Any) -> None:
        """Append a line to this job's log (admin, monitor) and to the process log.

        `level`: debug, info, warning or error. `fields` must be JSON-able; secret-named
        fields and secret-shaped text are redacted.
        """
        if level not in {"debug", "info", "warning", "error"}:
            level = "info"
        services.write_log(self.job, message, level=level, **fields)
        getattr(log, level)("job.log", message=message, **fields)

    def enqueue(
        self,
        type: str,
        payload: dict | BaseModel | None = None,
        *,
        dedupe_key: str | None = None,
        serial_key: str | None = _SAME,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        priority: int = 0,
    ) -> Job:
        """Queue the next job of a chain; it is written when this job succeeds, in the
        same transaction, so a crash never loses or duplicates a step.

        Arguments as `jobqueue.enqueue`; `serial_key` defaults to this job's. Validation
        errors (`UnknownJobType`, `InvalidJobPayload`) are raised now. If this run ends any
        other way than success (retry, reschedule, cancel), the follow-ups are dropped: the
        next run enqueues them again. Returns the unsaved `Job` (saved on success; when its
        dedupe key is taken by then, the existing job is kept instead). For a job that must
        exist whatever happens to this one, call `jobqueue.enqueue` directly.
        """
        job = services.build_job(
            type,
            payload,
            dedupe_key=dedupe_key,
            serial_key=self.job.serial_key if serial_key is _SAME else serial_key,
            run_at=run_at,
            max_attempts=max_attempts,
            priority=priority,
        )
        self.follow_ups.append(job)
        return job
