"""The worker's two hot paths on Postgres, each one statement (one round trip).

A claim and a plain success are each a single `WITH … UPDATE … RETURNING` whose
data-modifying CTE also writes the outbox events (none for the claim of a polling job):
atomic without BEGIN/COMMIT round trips.
The claim is the same `FOR UPDATE SKIP LOCKED` selection the ORM would issue
(`select_for_update(skip_locked=True)`), fused with its update, as procrastinate's
`fetch_job` does. The event payload mirrors `Job.as_event()` (a test holds them equal).
Everything else (enqueue, retries, operator actions) goes through the ORM.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import connection

from jobqueue import outbox
from jobqueue.models import Job


def _ts(column: str) -> str:
    """SQL for a timestamp as `Job.as_event()` writes it: UTC, always six fraction digits
    (jsonb's own rendering drops trailing zeros, so 10% of events differed)."""
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""


_JOB_JSON = f"""jsonb_build_object(
    'id', c.id, 'type', c.type, 'state', c.state, 'attempts', c.attempts,
    'max_attempts', c.max_attempts, 'priority', c.priority, 'run_at', {_ts("c.run_at")},
    'dedupe_key', c.dedupe_key, 'serial_key', c.serial_key, 'locked_by', c.locked_by,
    'cancel_requested', c.cancel_requested_at IS NOT NULL, 'last_error', c.last_error,
    'created_at', {_ts("c.created_at")}, 'started_at', {_ts("c.started_at")},
    'finished_at', {_ts("c.finished_at")})"""

_EVENTS_FROM = """
    INSERT INTO doce_event (topic, type, payload, created_at)
    SELECT t.topic, 'job.' || %(change)s,
           jsonb_build_object('change', %(change)s, 'job', {job_json}), %(now)s
    FROM {source} AS c CROSS JOIN LATERAL unnest(ARRAY['queue', c.serial_key]) AS t(topic)
    WHERE t.topic IS NOT NULL AND NOT c.polling
"""

# Built from constant fragments only; every value is a query parameter.
CLAIM = f"""
WITH claimed AS (
    UPDATE queue_job
    SET state = 'running', attempts = attempts + 1, locked_by = %(worker)s,
        locked_at = %(now)s, lease_expires_at = %(expires)s, started_at = %(now)s,
        updated_at = %(now)s
    WHERE id = (
        SELECT j.id FROM queue_job AS j
        WHERE j.state = 'queued' AND j.run_at <= %(now)s
          AND NOT EXISTS (SELECT 1 FROM queue_queuesettings AS s WHERE s.paused)
          AND (j.serial_key IS NULL OR NOT EXISTS (
              SELECT 1 FROM queue_job AS r
              WHERE r.state = 'running' AND r.serial_key = j.serial_key))
        ORDER BY j.priority DESC, j.run_at, j.id
        LIMIT 1
        FOR UPDATE SKIP LOCKED)
    RETURNING *
), events AS ({_EVENTS_FROM.format(job_json=_JOB_JSON, source="claimed")})
SELECT id, serial_key, polling FROM claimed
"""  # noqa: S608

SUCCEED = f"""
WITH done AS (
    UPDATE queue_job
    SET state = 'succeeded', finished_at = %(now)s, updated_at = %(now)s, polling = false,
        locked_by = NULL, locked_at = NULL, lease_expires_at = NULL
    WHERE id = %(id)s AND state = 'running' AND locked_by = %(worker)s
    RETURNING *
), events AS ({_EVENTS_FROM.format(job_json=_JOB_JSON, source="done")})
SELECT id FROM done
"""  # noqa: S608


def claim(worker_id: str, now: datetime, lease_seconds: float) -> int | None:
    """Claim the next ready job for `worker_id`; return its id (see `services.claim_next`).

    Only the id comes back: decoding the row (its JSON payload) is the caller's business, so
    a row that does not decode cannot break the claim itself.
    """
    params: dict[str, Any] = {
        "worker": worker_id,
        "now": now,
        "expires": now + timedelta(seconds=lease_seconds),
        "change": "started",
    }
    with connection.cursor() as cursor:
        cursor.execute(CLAIM, params)
        row = cursor.fetchone()
    if row is None:
        return None
    pk, serial_key, polling = row
    if not polling:  # a polling job's claim writes no event (see `services.reschedule_job`)
        outbox.wake_after_commit(outbox.job_topics(Job(pk=pk, serial_key=serial_key)))
    return pk


def succeed(job: Job, worker_id: str, now: datetime) -> bool:
    """Mark `job` succeeded if `worker_id` still holds it; False when the lease was lost."""
    params: dict[str, Any] = {"id": job.pk, "worker": worker_id, "now": now, "change": "succeeded"}
    with connection.cursor() as cursor:
        cursor.execute(SUCCEED, params)
        done = cursor.fetchone() is not None
    if done:
        job.state = "succeeded"
        job.finished_at = job.updated_at = now
        job.locked_by = job.locked_at = job.lease_expires_at = None
        outbox.wake_after_commit(outbox.job_topics(job))
    return done
