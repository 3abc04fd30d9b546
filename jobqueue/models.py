"""The job queue's tables: jobs, their logs, the pause switch, worker heartbeats, periodic runs.

Invariants live in the database, not in Python: at most one unfinished job per dedupe key and
at most one running job per serialization key (partial unique constraints), so two workers, or
two web processes enqueueing at once, cannot break them whatever the timing.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.db.models import Q
from django.utils import timezone

from jobqueue.visibility import visible_serial_keys

MAX_LOG_MESSAGE_CHARS = 5_000


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING)
FINISHED_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)
# Only a job that ended badly may be retried: re-running a succeeded one repeats its effect
# (a `docker.stop` retried from history would stop a running project).
RETRYABLE_STATES = (JobState.FAILED, JobState.CANCELLED)


class JobQuerySet(models.QuerySet):
    def active(self) -> JobQuerySet:
        """Jobs not finished yet: queued or running."""
        return self.filter(state__in=ACTIVE_STATES)

    def queued(self) -> JobQuerySet:
        return self.filter(state=JobState.QUEUED)

    def running(self) -> JobQuerySet:
        return self.filter(state=JobState.RUNNING)

    def finished(self) -> JobQuerySet:
        return self.filter(state__in=FINISHED_STATES)

    def lease_expired(self, now) -> JobQuerySet:
        """Running jobs whose worker stopped extending the lease before `now`, and running
        jobs with no lease expiry at all (only a hand-edited row has none; left alone, it
        would block its serialization key for ever)."""
        return self.running().filter(Q(lease_expires_at__lt=now) | Q(lease_expires_at=None))

    def held_by_dead_workers(self, now, silent_seconds: float) -> JobQuerySet:
        """Running jobs whose worker's own heartbeat row says it is gone: stopped, or silent
        for more than `silent_seconds` before `now`. A lock without a heartbeat row is not
        evidence (that worker may not have written one yet)."""
        silent_since = now - timedelta(seconds=silent_seconds)
        dead = WorkerHeartbeat.objects.filter(
            Q(stopped_at__isnull=False) | Q(heartbeat_at__lt=silent_since)
        ).values("worker_id")
        return self.running().filter(locked_by__in=dead)

    def for_user(self, user) -> JobQuerySet:
        """Jobs `user` may see: all for staff; else the jobs whose serial key a domain app
        says the user owns (`jobqueue.visibility`); none for an anonymous user."""
        if not getattr(user, "is_authenticated", False):
            return self.none()
        if user.is_staff:
            return self
        return self.filter(serial_key__in=visible_serial_keys(user))


class Job(models.Model):
    """One unit of background work of a registered `type`, with a JSON `payload`.

    Life cycle: queued → running → succeeded | failed | cancelled; running → queued again on
    a retry (after backoff), a reschedule, a released or reclaimed lease. `attempts` counts
    claims (a reschedule or a graceful release gives its attempt back).
    """

    id = models.BigAutoField(primary_key=True)
    type = models.CharField(max_length=100)
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED)
    payload = models.JSONField(default=dict)
    # Higher runs first.
    priority = models.IntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    run_at = models.DateTimeField(default=timezone.now)
    # Lease: which worker holds the job and until when; all NULL unless running.
    locked_by = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    locked_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # At most one unfinished job per dedupe key. NULL, not "", means none: the partial
    # unique constraints below must ignore jobs without a key.
    dedupe_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    # Jobs sharing a serialization key never run at the same time (by convention
    # `project:<id>`, which is also that project's event topic).
    serial_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # Set while the job polls (its handler rescheduled it, e.g. "not ready yet"): its claims
    # and reschedules write no events, since nothing a user sees changes; its outcome does.
    polling = models.BooleanField(default=False)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dedupe_key"],
                condition=Q(state__in=["queued", "running"]) & Q(dedupe_key__isnull=False),
                name="queue_job_one_active_per_dedupe_key",
            ),
            models.UniqueConstraint(
                fields=["serial_key"],
                condition=Q(state="running") & Q(serial_key__isnull=False),
                name="queue_job_one_running_per_serial_key",
            ),
            models.CheckConstraint(
                condition=Q(max_attempts__gte=1), name="queue_job_max_attempts_positive"
            ),
        ]
        indexes = [
            # The worker's claim: ready jobs in priority, run_at, creation order.
            models.Index(
                "state",
                models.F("priority").desc(),
                "run_at",
                "id",
                name="queue_job_ready",
                condition=Q(state="queued"),
            ),
            # The reaper: running jobs by lease expiry; the claim's serial-key exclusion.
            models.Index(
                fields=["lease_expires_at"],
                name="queue_job_running_lease",
                condition=Q(state="running"),
            ),
            # The monitor's filters and a project's jobs (serial key = project topic).
            models.Index(fields=["serial_key", "-id"], name="queue_job_serial_key"),
            models.Index(fields=["type", "-id"], name="queue_job_type"),
            models.Index(fields=["state", "-id"], name="queue_job_state"),
            # queue_prune deletes finished jobs by age.
            models.Index(fields=["finished_at"], name="queue_job_finished_at"),
        ]

    def __str__(self) -> str:
        return f"{self.type} #{self.id} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def is_retryable(self) -> bool:
        """True for a failed or cancelled job (see `RETRYABLE_STATES`)."""
        return self.state in RETRYABLE_STATES

    def as_event(self) -> dict:
        """The JSON shape of this job in outbox events and the monitor's live updates."""
        return {
            "id": self.id,
            "type": self.type,
            "state": self.state,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "priority": self.priority,
            "run_at": _iso(self.run_at),
            "dedupe_key": self.dedupe_key,
            "serial_key": self.serial_key,
            "locked_by": self.locked_by,
            "cancel_requested": self.cancel_requested_at is not None,
            "last_error": self.last_error,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
        }


def _iso(value) -> str | None:
    # Always six fraction digits, as the Postgres fast path renders it (jobqueue/pgsql.py).
    return value.isoformat(timespec="microseconds") if value else None


class JobLog(models.Model):
    """One line a handler logged through its context, or a failed attempt with its traceback."""

    class Level(models.TextChoices):
        DEBUG = "debug", "Debug"
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="logs")
    created_at = models.DateTimeField(default=timezone.now)
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.INFO)
    attempt = models.PositiveIntegerField(default=0)
    message = models.TextField()
    fields = models.JSONField(default=dict, blank=True)
    traceback = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["id"]
        indexes = [
            # The monitor's log tail: a job's lines after id N.
            models.Index(fields=["job", "id"], name="queue_joblog_job_id"),
        ]

    def __str__(self) -> str:
        return f"{self.level}: {self.message[:60]}"

    def as_event(self) -> dict:
        return {
            "job_id": self.job_id,
            "id": self.id,
            "time": self.created_at.isoformat(),
            "level": self.level,
            "attempt": self.attempt,
            "message": self.message,
            "fields": self.fields,
            "traceback": self.traceback,
        }


class QueueSettings(models.Model):
    """The queue-wide pause switch (one row, id 1). Paused: nothing is claimed."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    paused = models.BooleanField(default=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "queue settings"

    def __str__(self) -> str:
        return "paused" if self.paused else "running"


class WorkerHeartbeat(models.Model):
    """A `run_worker` process: written at start, every heartbeat, and at a clean stop.

    `/healthz` reports the freshest heartbeat. A worker killed with SIGKILL simply stops
    beating: once its row is silent for `DEAD_AFTER_HEARTBEATS` heartbeats, the reaper
    reclaims its jobs without waiting for their leases to expire.
    """

    worker_id = models.CharField(primary_key=True, max_length=200)
    hostname = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    concurrency = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now)
    stopped_at = models.DateTimeField(null=True, blank=True)
    jobs_done = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["-heartbeat_at"], name="queue_worker_heartbeat")]

    def __str__(self) -> str:
        return self.worker_id


class PeriodicRun(models.Model):
    """When a periodic task last ran, so N workers run it once per interval, not N times."""

    name = models.CharField(primary_key=True, max_length=100)
    last_run_at = models.DateTimeField()
    last_duration_s = models.FloatField(default=0.0)
    last_error = models.TextField(blank=True, default="")

    def __str__(self) -> str:
        return self.name
