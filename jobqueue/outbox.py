"""Job events to the outbox, and worker wake-ups after enqueue.

Every job state change writes `job.<change>` events (payload: `{"change", "job"}` with
`Job.as_event()`) in the transaction of the change, to topic `queue` (the staff monitor)
and, when the job has a serialization key, to the topic named by that key (by convention
`project:<id>`, the project's own topic). Log lines go out as `job.log` the same way.
"""

from __future__ import annotations

import threading
import weakref

from django.db import connection, transaction

from doce import events
from doce.models import Event

QUEUE_TOPIC = "queue"
NOTIFY_CHANNEL = "doce_queue"

# A worker process whose channel layer is in-memory turns this off: its wake-ups could
# reach no consumer (they live in the web process, which polls the outbox instead).
wake_consumers = True

_local_wakers: weakref.WeakSet = weakref.WeakSet()
_local_lock = threading.Lock()


def job_topics(job) -> list[str]:
    """The outbox topics of `job`'s events: `queue`, plus its serialization key if any."""
    return [QUEUE_TOPIC, job.serial_key] if job.serial_key else [QUEUE_TOPIC]


def emit_job_change(job, change: str) -> None:
    """Write event `job.<change>` for `job` (call inside the transaction of the change)."""
    _emit(job_topics(job), f"job.{change}", {"change": change, "job": job.as_event()})


def emit_job_log(job, entry) -> None:
    """Write event `job.log` carrying one `JobLog` line of `job`."""
    _emit(job_topics(job), "job.log", {"job_id": job.id, "log": entry.as_event()})


def emit_queue_change(change: str, payload: dict) -> None:
    """Write a queue-wide event (`queue.paused`, `queue.resumed`) to topic `queue`."""
    _emit([QUEUE_TOPIC], f"queue.{change}", payload)


def _emit(topics: list[str], type: str, payload: dict) -> None:
    Event.objects.bulk_create([Event(topic=t, type=type, payload=payload) for t in topics])
    wake_after_commit(topics)


def wake_after_commit(topics: list[str]) -> None:
    """Wake the consumers of `topics` once the current transaction commits."""
    if wake_consumers:

        def wake() -> None:
            for topic in topics:
                events.wake(topic)

        transaction.on_commit(wake)


def notify_workers() -> None:
    """Wake idle workers when the current transaction commits.

    Postgres: NOTIFY is transactional, so workers in any process hear it only after
    commit. Workers in this process are woken directly after commit as well.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"NOTIFY {NOTIFY_CHANNEL}")
    transaction.on_commit(wake_local_workers)


def register_local_waker(waker) -> None:
    """Have `waker.notify()` called after every enqueue commits in this process.

    Held weakly: a stopped worker's waker disappears with it.
    """
    with _local_lock:
        _local_wakers.add(waker)


def wake_local_workers() -> None:
    with _local_lock:
        wakers = list(_local_wakers)
    for waker in wakers:
        waker.notify()
