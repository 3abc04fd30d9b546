"""Every write the queue makes: enqueue, claim, the outcomes of a run, operator actions.

Each state change is a compare-and-set (`filter(id=…, state=…, locked_by=…).update(…)`,
checked for one row) inside a short transaction that also writes its outbox event. Times
are UTC datetimes; delays and leases are seconds.
"""

from __future__ import annotations

import json
import random
import traceback as tb
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import BooleanField, ExpressionWrapper, F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from pydantic import BaseModel

from doce.redact import redact_mapping, redact_text
from jobqueue import outbox, pgsql
from jobqueue.errors import InvalidJobPayload
from jobqueue.models import (
    MAX_LOG_MESSAGE_CHARS,
    Job,
    JobLog,
    JobState,
    QueueSettings,
    WorkerHeartbeat,
)
from jobqueue.registry import get_handler

log = structlog.get_logger(__name__)

MAX_KEY_LENGTH = 200
MAX_ERROR_CHARS = 2_000
_UNSET: Any = object()


# --- Enqueue ----------------------------------------------------------------------------------


def enqueue(
    type: str,
    payload: dict | BaseModel | None = None,
    *,
    dedupe_key: str | None = None,
    serial_key: str | None = None,
    run_at: datetime | None = None,
    max_attempts: int | None = None,
    priority: int = 0,
) -> Job:
    """Add a job of registered `type` and return it.

    - `payload`: a dict or an instance of the type's payload model; validated now (and again
      before the handler runs) and stored as JSON.
    - `dedupe_key`: at most one unfinished (queued or running) job per key; when the key is
      taken, the existing job is returned and nothing is written.
    - `serial_key`: jobs sharing it never run at the same time (`project:<id>` by convention).
    - `run_at`: earliest start (aware datetime; default now). `priority`: higher runs first.
    - `max_attempts`: claims allowed before the job fails (default: the handler's, else
      `DOCE_QUEUE_MAX_ATTEMPTS`).

    Inside a transaction the job commits or rolls back with the caller's changes; idle
    workers are woken after commit. Raises `UnknownJobType` or `InvalidJobPayload` (both
    `ValueError`s) before anything is written.
    """
    job = build_job(
        type,
        payload,
        dedupe_key=dedupe_key,
        serial_key=serial_key,
        run_at=run_at,
        max_attempts=max_attempts,
        priority=priority,
    )
    with transaction.atomic():
        saved = insert_job(job)
        if saved is job and job.run_at <= timezone.now():
            outbox.notify_workers()
    return saved


def build_job(
    type: str,
    payload: dict | BaseModel | None,
    *,
    dedupe_key: str | None,
    serial_key: str | None,
    run_at: datetime | None,
    max_attempts: int | None,
    priority: int,
) -> Job:
    """Validate everything `enqueue` takes and return the unsaved `Job`."""
    spec = get_handler(type)
    data = spec.validate(payload)
    for name, key in (("dedupe_key", dedupe_key), ("serial_key", serial_key)):
        if key is not None and (not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH):
            raise InvalidJobPayload(f"{name} must be a string of 1..{MAX_KEY_LENGTH} characters")
    attempts = max_attempts
    if attempts is None:
        attempts = spec.max_attempts or settings.DOCE_QUEUE_MAX_ATTEMPTS
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise InvalidJobPayload("max_attempts must be a whole number of at least 1")
    if run_at is not None and timezone.is_naive(run_at):
        raise InvalidJobPayload("run_at must be timezone-aware")
    if not isinstance(priority, int):
        raise InvalidJobPayload("priority must be a whole number")
    now = timezone.now()
    return Job(
        type=type,
        payload=data,
        dedupe_key=dedupe_key,
        serial_key=serial_key,
        run_at=run_at or now,
        max_attempts=attempts,
        priority=priority,
        created_at=now,
        updated_at=now,
    )


def insert_job(job: Job) -> Job:
    """Save unsaved `job` with its `enqueued` event; return it, or the active job holding
    its dedupe key. Call inside a transaction."""
    if job.dedupe_key is None:
        _save_new(job)
        return job
    for _ in range(5):
        existing = Job.objects.active().filter(dedupe_key=job.dedupe_key).first()
        if existing is not None:
            return existing
        try:
            # A savepoint: losing the race to the unique constraint must not abort the
            # caller's transaction.
            with transaction.atomic():
                _save_new(job)
            return job
        except IntegrityError:
            job.pk = None
            continue  # another enqueue won; read its job (or retry if it already finished)
    raise IntegrityError(f"could not enqueue with dedupe key {job.dedupe_key!r}")


def _save_new(job: Job) -> None:
    job.save(force_insert=True)
    outbox.emit_job_change(job, "enqueued")


# --- Claim ------------------------------------------------------------------------------------


def claim_next(worker_id: str, lease_seconds: float) -> Job | None:
    """Lease the next ready job to `worker_id` and return it (now `running`), else None.

    Order: priority (high first), then `run_at`, then creation. Skips serialization keys
    with a running job; claims nothing while the queue is paused. The claim counts an
    attempt. Postgres: `SELECT … FOR UPDATE SKIP LOCKED` and an update in one short
    transaction; two workers racing for one serialization key are settled by the unique
    constraint (the loser gets None and tries again). SQLite: one UPDATE … RETURNING in an
    immediate transaction (writers are serialized, so there is no race).

    A claimed row that cannot be decoded (a payload nested too deep for `json.loads`, a
    malformed time written by hand) fails alone, with the reason in `last_error` and its
    log, and the next ready job is claimed instead.
    """
    # A lost race means another worker just started a job of that key; the next try no
    # longer sees that key as free, so a few tries settle it. An undecodable row is failed
    # by its claim, so the next try sees the next job.
    for _ in range(10):
        if connection.vendor == "postgresql":
            job = _claim_postgres(worker_id, lease_seconds)
        else:
            job = _claim_sqlite(worker_id, lease_seconds)
        if job is not _CONTENDED and job is not _UNDECODABLE:
            return job
    return None


_CONTENDED: Any = object()
_UNDECODABLE: Any = object()

# Columns whose values cannot fail to decode: no JSON, no times (SQLite stores those as text
# that anyone with the database file can spoil).
_PLAIN_FIELDS = (
    "id",
    "type",
    "state",
    "attempts",
    "max_attempts",
    "priority",
    "dedupe_key",
    "serial_key",
    "locked_by",
    "last_error",
)


def plain_job(**row) -> Job:
    """An unsaved `Job` carrying only `_PLAIN_FIELDS` values (times None, payload empty):
    enough for outcome writes and events when the full row may not decode."""
    job = Job(**row, payload={})
    for name in ("run_at", "created_at", "updated_at"):
        setattr(job, name, None)  # unknown: the stored values may not decode
    return job


def _load_claimed(pk: int, worker_id: str) -> Job:
    """The claimed row as a `Job`, or `_UNDECODABLE` after failing it (see `claim_next`)."""
    try:
        return Job.objects.get(pk=pk)
    except DatabaseError:
        raise
    except Exception as exc:  # RecursionError, ValueError… from decoding a spoiled column
        fail_undecodable(pk, worker_id, exc)
        return _UNDECODABLE


def fail_undecodable(pk: int, worker_id: str, exc: BaseException) -> bool:
    """End running job `pk` (held by `worker_id`) as `failed`: its row cannot be decoded.

    Touches no column that might not decode; logs `job.undecodable` at ERROR with the
    cause, and writes the reason to `last_error` and the job's log.
    """
    row = Job.objects.filter(pk=pk).values(*_PLAIN_FIELDS).first()
    if row is None:
        return False
    job = plain_job(**row)
    reason = f"the stored job cannot be decoded, so it cannot run: {error_text(exc)}"
    log.error("job.undecodable", job_id=pk, job_type=job.type, error=error_text(exc))
    with transaction.atomic():
        if not _finish_owned(
            job,
            worker_id,
            "failed",
            state=JobState.FAILED,
            finished_at=timezone.now(),
            last_error=reason[:MAX_ERROR_CHARS],
        ):
            return False
        write_log(job, reason, level=JobLog.Level.ERROR)
    return True


def _claim_postgres(worker_id: str, lease_seconds: float) -> Job | None:
    try:
        if connection.in_atomic_block:
            # Inside a transaction (tests): a savepoint keeps a lost race from aborting it.
            with transaction.atomic():
                pk = pgsql.claim(worker_id, timezone.now(), lease_seconds)
        else:
            pk = pgsql.claim(worker_id, timezone.now(), lease_seconds)
    except IntegrityError:
        return _CONTENDED  # another worker started a job of this serialization key first
    if pk is None:
        return None
    # The claim (and its `started` events) committed already; a row that does not decode
    # is failed now rather than left running for the reaper.
    return _load_claimed(pk, worker_id)


_SQLITE_CLAIM = """
UPDATE queue_job
SET state = 'running', attempts = attempts + 1, locked_by = %s, locked_at = %s,
    lease_expires_at = %s, started_at = %s, updated_at = %s
WHERE id = (
    SELECT j.id FROM queue_job AS j
    WHERE j.state = 'queued' AND j.run_at <= %s
      AND NOT EXISTS (SELECT 1 FROM queue_queuesettings AS s WHERE s.paused)
      AND (j.serial_key IS NULL OR NOT EXISTS (
          SELECT 1 FROM queue_job AS r WHERE r.state = 'running' AND r.serial_key = j.serial_key))
    ORDER BY j.priority DESC, j.run_at, j.id
    LIMIT 1)
RETURNING id
"""


def _claim_sqlite(worker_id: str, lease_seconds: float) -> Job | None:
    now = timezone.now()
    adapt = connection.ops.adapt_datetimefield_value
    expires = now + timedelta(seconds=lease_seconds)
    params = [worker_id, adapt(now), adapt(expires), adapt(now), adapt(now), adapt(now)]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_SQLITE_CLAIM, params)
            row = cursor.fetchone()
        if row is None:
            return None
        job = _load_claimed(row[0], worker_id)
        if job is not _UNDECODABLE and not job.polling:
            outbox.emit_job_change(job, "started")
        return job


# --- Outcomes of a run (called by the worker that holds the lease) ----------------------------


def _finish_owned(job: Job, worker_id: str, change: str, *, quiet: bool = False, **fields) -> bool:
    """CAS a running `job` held by `worker_id` to new `fields`; emit `job.<change>` unless
    `quiet`. Every outcome but a reschedule ends the job's polling.

    Returns False (and writes nothing) when the lease was lost meanwhile. Call inside a
    transaction.
    """
    now = timezone.now()
    fields.setdefault("updated_at", now)
    fields.setdefault("polling", False)
    lease_cleared = {"locked_by": None, "locked_at": None, "lease_expires_at": None}
    changes = {**lease_cleared, **fields}
    touched = Job.objects.filter(pk=job.pk, state=JobState.RUNNING, locked_by=worker_id).update(
        **changes
    )
    if touched != 1:
        log.warning("job.lease_lost", job_id=job.pk, job_type=job.type, change=change)
        return False
    for name, value in changes.items():
        if not hasattr(value, "resolve_expression"):
            setattr(job, name, value)
    if "attempts" in changes:
        job.refresh_from_db(fields=["attempts"])
    if not quiet:
        outbox.emit_job_change(job, change)
    return True


def complete_job(job: Job, worker_id: str, follow_ups: Sequence[Job] = ()) -> bool:
    """Mark `job` succeeded and enqueue `follow_ups` (its chain) in the same transaction."""
    now = timezone.now()
    if not follow_ups and connection.vendor == "postgresql":
        done = pgsql.succeed(job, worker_id, now)
        if not done:
            log.warning("job.lease_lost", job_id=job.pk, job_type=job.type, change="succeeded")
        return done
    with transaction.atomic():
        if not _finish_owned(
            job, worker_id, "succeeded", state=JobState.SUCCEEDED, finished_at=now
        ):
            return False
        wake = False
        for follow_up in follow_ups:
            wake = insert_job(follow_up) is follow_up or wake
        if wake:
            outbox.notify_workers()
    return True


def cancel_running_job(job: Job, worker_id: str) -> bool:
    """End `job` as cancelled: its handler stopped at a checkpoint after a cancel request."""
    with transaction.atomic():
        return _finish_owned(
            job, worker_id, "cancelled", state=JobState.CANCELLED, finished_at=timezone.now()
        )


def reschedule_job(job: Job, worker_id: str, delay_seconds: float) -> bool:
    """Back to `queued` at now + `delay_seconds`, giving the attempt back, recording no error.

    The job is now `polling`: this and its next claims write no events (a readiness poll
    once a second would otherwise send four outbox rows a second to every open page); to
    watchers it stays running until its outcome.
    """
    delay = max(0.0, float(delay_seconds))
    with transaction.atomic():
        return _finish_owned(
            job,
            worker_id,
            "rescheduled",
            quiet=True,
            polling=True,
            state=JobState.QUEUED,
            run_at=timezone.now() + timedelta(seconds=delay),
            attempts=F("attempts") - 1,
        )


def release_job(job: Job, worker_id: str) -> bool:
    """Back to `queued` now, giving the attempt back: the worker is shutting down."""
    with transaction.atomic():
        return _finish_owned(
            job,
            worker_id,
            "released",
            state=JobState.QUEUED,
            run_at=timezone.now(),
            attempts=F("attempts") - 1,
        )


def backoff_seconds(attempt: int) -> float:
    """Full-jitter exponential backoff after failed attempt number `attempt` (1-based).

    `uniform(0, min(cap, base * 2**(attempt - 1)))` with base `DOCE_QUEUE_RETRY_BASE_SECONDS`
    (2 s) and cap `DOCE_QUEUE_RETRY_MAX_SECONDS` (60 s).
    """
    base = settings.DOCE_QUEUE_RETRY_BASE_SECONDS
    cap = settings.DOCE_QUEUE_RETRY_MAX_SECONDS
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not security


def fail_attempt(job: Job, worker_id: str, exc: BaseException, *, permanent: bool) -> bool:
    """Record the failed attempt (error + traceback in the job's log), then retry or fail.

    Retries after `backoff_seconds(attempts)` unless `permanent` or attempts are spent;
    a failed job frees its dedupe key (the partial unique constraint covers only
    queued/running jobs).
    """
    message = error_text(exc)
    trace = redact_text("".join(tb.format_exception(exc)))[-20_000:]
    final = permanent or job.attempts >= job.max_attempts
    now = timezone.now()
    with transaction.atomic():
        if final:
            done = _finish_owned(
                job, worker_id, "failed", state=JobState.FAILED, finished_at=now, last_error=message
            )
        else:
            delay = backoff_seconds(job.attempts)
            done = _finish_owned(
                job,
                worker_id,
                "retrying",
                state=JobState.QUEUED,
                run_at=now + timedelta(seconds=delay),
                last_error=message,
            )
        if done:
            write_log(job, message, level=JobLog.Level.ERROR, traceback=trace, final=final)
    return done


def error_text(exc: BaseException) -> str:
    """`ExceptionName: message`, secrets redacted, at most `MAX_ERROR_CHARS`."""
    text = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
    return redact_text(text)[:MAX_ERROR_CHARS]


def write_log(
    job: Job, message: str, *, level: str = "info", traceback: str = "", **fields
) -> JobLog:
    """Store one log line of `job` (redacted, truncated) and emit it as a `job.log` event."""
    text = redact_text(str(message))
    if len(text) > MAX_LOG_MESSAGE_CHARS:
        text = text[:MAX_LOG_MESSAGE_CHARS] + "…[truncated]"
    entry = JobLog.objects.create(
        job=job,
        level=level,
        attempt=job.attempts,
        message=text,
        fields=_jsonable(redact_mapping(fields)),
        traceback=traceback,
    )
    outbox.emit_job_log(job, entry)
    return entry


def _jsonable(data: dict) -> dict:
    return json.loads(json.dumps(data, default=str))


# --- Operator actions (admin, monitor, project pages) -----------------------------------------


def _get(job: Job | int) -> Job | None:
    if isinstance(job, Job):
        return Job.objects.filter(pk=job.pk).first()
    return Job.objects.filter(pk=job).first()


def cancel_job(job: Job | int) -> bool:
    """Cancel a job. Queued: `cancelled` at once. Running: set `cancel_requested_at`; the
    handler ends `cancelled` at its next `ctx.throw_if_cancel_requested()`.

    Returns True when a row changed (False for finished jobs or a repeated request).
    """
    now = timezone.now()
    with transaction.atomic():
        current = _get(job)
        if current is None:
            return False
        queued = Job.objects.filter(pk=current.pk, state=JobState.QUEUED).update(
            state=JobState.CANCELLED,
            cancel_requested_at=now,
            finished_at=now,
            updated_at=now,
        )
        if queued:
            current.refresh_from_db()
            outbox.emit_job_change(current, "cancelled")
            return True
        requested = Job.objects.filter(
            pk=current.pk, state=JobState.RUNNING, cancel_requested_at__isnull=True
        ).update(cancel_requested_at=now, updated_at=now)
        if requested:
            current.refresh_from_db()
            outbox.emit_job_change(current, "cancel_requested")
        return bool(requested)


def force_cancel_job(job: Job | int) -> bool:
    """End an unfinished job as `cancelled` now, revoking its lease.

    For a handler that never reaches a checkpoint: its worker's next heartbeat (or
    checkpoint) sees the lease gone and stops; whatever the handler does meanwhile is
    no longer recorded. Returns True when a row changed.
    """
    now = timezone.now()
    with transaction.atomic():
        current = _get(job)
        if current is None:
            return False
        touched = Job.objects.filter(
            pk=current.pk, state__in=[JobState.QUEUED, JobState.RUNNING]
        ).update(
            state=JobState.CANCELLED,
            cancel_requested_at=Coalesce(F("cancel_requested_at"), now),
            finished_at=now,
            locked_by=None,
            locked_at=None,
            lease_expires_at=None,
            last_error="force-cancelled by an operator",
            updated_at=now,
        )
        if touched:
            current.refresh_from_db()
            outbox.emit_job_change(current, "cancelled")
        return bool(touched)


def run_job_now(job: Job | int) -> bool:
    """Make a queued job due now (its `run_at` becomes now). Returns True when it changed."""
    now = timezone.now()
    with transaction.atomic():
        current = _get(job)
        if current is None:
            return False
        touched = Job.objects.filter(pk=current.pk, state=JobState.QUEUED, run_at__gt=now).update(
            run_at=now, updated_at=now
        )
        if touched:
            current.refresh_from_db()
            outbox.emit_job_change(current, "run_now")
            outbox.notify_workers()
        return bool(touched)


def retry_job(job: Job | int) -> Job | None:
    """Enqueue a new job with a failed or cancelled job's type, payload, keys, priority and
    attempts.

    Returns the new job (or the active job already holding the dedupe key); None when the
    job does not exist or did not end failed or cancelled (a succeeded job is never re-run:
    its effect would repeat). The payload is validated again.
    """
    current = _get(job)
    if current is None or not current.is_retryable:
        return None
    return enqueue(
        current.type,
        current.payload,
        dedupe_key=current.dedupe_key,
        serial_key=current.serial_key,
        max_attempts=current.max_attempts,
        priority=current.priority,
    )


def is_paused() -> bool:
    return QueueSettings.objects.filter(pk=1, paused=True).exists()


def set_paused(paused: bool) -> bool:
    """Pause (nothing is claimed; running jobs go on) or resume the queue.

    Returns True when the switch changed.
    """
    with transaction.atomic():
        row, _ = QueueSettings.objects.select_for_update().get_or_create(pk=1)
        if row.paused == paused:
            return False
        row.paused = paused
        row.updated_at = timezone.now()
        row.save(update_fields=["paused", "updated_at"])
        outbox.emit_queue_change("paused" if paused else "resumed", {"paused": paused})
        if not paused:
            outbox.notify_workers()
    return True


def pause_queue() -> bool:
    return set_paused(True)


def resume_queue() -> bool:
    return set_paused(False)


# --- Housekeeping ---------------------------------------------------------------------------


# A worker whose heartbeat row is this many heartbeats old (and at least this many seconds)
# is dead: its jobs are reclaimed. The floor keeps a tiny heartbeat setting on a loaded
# machine from reclaiming the jobs of a worker that is merely slow.
DEAD_AFTER_HEARTBEATS = 3
DEAD_AFTER_MIN_SECONDS = 10.0


def reap_expired_leases(now: datetime | None = None) -> int:
    """Recover running jobs whose worker is gone: the lease expired (the worker died or
    hangs), the lease has no expiry at all, or the worker's own heartbeat row says it
    stopped or has been silent for `DEAD_AFTER_HEARTBEATS` heartbeats (at least 10 s).

    A job whose cancel was requested ends `cancelled`; with attempts spent it ends `failed`
    (freeing its dedupe key); otherwise it returns to `queued` (the attempt counts). A job
    whose worker still heartbeats has a fresh lease and is never touched. Reads only columns
    that always decode, and one job's failure does not stop the others. Returns the number
    of jobs recovered.
    """
    now = now or timezone.now()
    silent = max(
        DEAD_AFTER_HEARTBEATS * settings.DOCE_QUEUE_HEARTBEAT_SECONDS, DEAD_AFTER_MIN_SECONDS
    )
    expired = Job.objects.lease_expired(now).values_list("pk", flat=True)
    dead = Job.objects.held_by_dead_workers(now, silent).values_list("pk", flat=True)
    candidates = sorted(set(expired[:500]) | set(dead[:500]))
    recovered = 0
    for pk in candidates:
        try:
            recovered += _reclaim(pk, now, silent)
        except DatabaseError:
            raise
        except Exception:
            log.exception("job.reclaim_failed", job_id=pk)
    return recovered


_CANCEL_REQUESTED = ExpressionWrapper(Q(cancel_requested_at__isnull=False), BooleanField())


def _reclaim(pk: int, now: datetime, silent_seconds: float) -> bool:
    """Recover running job `pk` if its worker is still gone (compare-and-set)."""
    gone = Job.objects.lease_expired(now) | Job.objects.held_by_dead_workers(now, silent_seconds)
    with transaction.atomic():
        row = (
            gone.filter(pk=pk)
            .annotate(cancel=_CANCEL_REQUESTED)
            .values(*_PLAIN_FIELDS, "cancel")
            .first()
        )
        if row is None:
            return False  # its worker extended the lease or finished it meanwhile
        cancel = row.pop("cancel")
        job = plain_job(**row)
        fields: dict[str, Any]
        if cancel:
            state, change, fields = JobState.CANCELLED, "cancelled", {"finished_at": now}
        elif job.attempts >= job.max_attempts:
            state, change = JobState.FAILED, "failed"
            fields = {
                "finished_at": now,
                "last_error": f"worker {job.locked_by} stopped on attempt {job.attempts} of "
                f"{job.max_attempts} (lease expired or heartbeat stopped)",
            }
        else:
            state, change, fields = JobState.QUEUED, "reclaimed", {"run_at": now}
        touched = gone.filter(pk=pk, locked_by=job.locked_by).update(
            state=state,
            polling=False,
            locked_by=None,
            locked_at=None,
            lease_expires_at=None,
            updated_at=now,
            **fields,
        )
        if not touched:
            return False
        log.warning("job.reclaimed", job_id=pk, worker_id=job.locked_by, to=state)
        for name, value in {"state": state, "locked_by": None, **fields}.items():
            setattr(job, name, value)
        outbox.emit_job_change(job, change)
        if state == JobState.QUEUED:
            outbox.notify_workers()
    return True


def prune_finished_jobs(older_than: timedelta) -> int:
    """Delete finished jobs (and their logs) finished more than `older_than` ago, and stopped
    worker heartbeats as old. Returns the number of jobs deleted."""
    cutoff = timezone.now() - older_than
    deleted = 0
    while True:
        old = Job.objects.finished().filter(finished_at__lt=cutoff)
        ids = list(old.values_list("pk", flat=True)[:1000])
        if not ids:
            break
        with transaction.atomic():
            JobLog.objects.filter(job_id__in=ids).delete()
            Job.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
    WorkerHeartbeat.objects.filter(heartbeat_at__lt=cutoff).delete()
    return deleted


def release_worker_jobs(worker_id: str) -> int:
    """Return every job still leased to `worker_id` to `queued`, attempts given back.

    Used at a graceful stop (handlers that did not reach a checkpoint in the grace period)
    and at start (jobs a previous process with the same worker id left behind).
    """
    released = 0
    for row in Job.objects.running().filter(locked_by=worker_id).values(*_PLAIN_FIELDS):
        if release_job(plain_job(**row), worker_id):
            released += 1
    return released
