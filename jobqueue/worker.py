"""The worker: N job threads, a heartbeat, housekeeping, and a wake-up listener.

Threads of one `Worker` (one `run_worker` process):

1. `concurrency` runner threads, each with its own database connection: claim a job, run
   its handler outside any transaction, record the outcome; when nothing is ready, wait for
   a wake-up or `poll_seconds`.
2. A heartbeat thread: every `heartbeat_seconds`, extend the leases of this worker's running
   jobs, flag jobs it no longer owns (their handlers stop at the next checkpoint) and jobs
   with a cancel request, and write the worker's own heartbeat row (for `/healthz`).
3. A housekeeping thread: the periodic tasks (`jobqueue.periodic`), among them the lease
   reaper and the pruning of old finished jobs.
4. A wake-up thread: Postgres LISTEN on `doce_queue` (enqueue NOTIFYs after commit); on
   SQLite, a `PRAGMA data_version` check every few milliseconds, which changes whenever
   another connection commits.

`stop()` (first SIGTERM/SIGINT) stops claiming; running handlers see `WorkerShuttingDown` at
their next checkpoint and go back to `queued`. After `grace_seconds` the leases of handlers
still running are released the same way. `exit_now()` (second signal) skips the grace.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from datetime import timedelta

import psycopg
import structlog
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.utils import timezone

from jobqueue import outbox, periodic, services
from jobqueue.context import JobContext
from jobqueue.errors import (
    InvalidJobPayload,
    JobCancelled,
    LeaseLost,
    Reschedule,
    UnknownJobType,
    WorkerShuttingDown,
    is_permanent,
)
from jobqueue.models import Job, JobState, WorkerHeartbeat
from jobqueue.registry import get_handler

log = structlog.get_logger(__name__)


def default_worker_id() -> str:
    """`<hostname>:<pid>:<6 hex>`: unique per process, readable in the admin."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Wakeup:
    """A wake-up counter: waiters skip the wait when it moved since they last looked."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generation = 0

    def generation(self) -> int:
        with self._cond:
            return self._generation

    def notify(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        with self._cond:
            if self._generation == seen:
                self._cond.wait(timeout)


class Worker:
    """One worker process's job runner (see the module docstring).

    Arguments default to the `DOCE_QUEUE_*` settings. `once`: exit when nothing is ready.
    `max_jobs`: exit after claiming that many jobs. `housekeeping=False` leaves periodic
    tasks to other workers (tests use it).
    """

    def __init__(
        self,
        *,
        worker_id: str | None = None,
        concurrency: int | None = None,
        poll_seconds: float | None = None,
        once: bool = False,
        max_jobs: int | None = None,
        lease_seconds: float | None = None,
        heartbeat_seconds: float | None = None,
        grace_seconds: float | None = None,
        housekeeping: bool = True,
    ) -> None:
        self.worker_id = worker_id or default_worker_id()
        self.concurrency = concurrency or settings.DOCE_QUEUE_CONCURRENCY
        self.poll_seconds = poll_seconds or settings.DOCE_QUEUE_POLL_SECONDS
        self.once = once
        self.max_jobs = max_jobs
        self.lease_seconds = lease_seconds or settings.DOCE_QUEUE_LEASE_SECONDS
        self.heartbeat_seconds = heartbeat_seconds or settings.DOCE_QUEUE_HEARTBEAT_SECONDS
        self.grace_seconds = (
            settings.DOCE_QUEUE_SHUTDOWN_GRACE_SECONDS if grace_seconds is None else grace_seconds
        )
        self.housekeeping = housekeeping
        self.stopping = threading.Event()  # stop claiming; checkpoints raise WorkerShuttingDown
        self.exiting = threading.Event()  # second signal: skip the grace period
        self.wakeup = Wakeup()
        self.jobs_done = 0
        # Set when a runner thread died of a bug: the process must exit non-zero.
        self.crashed = False
        self._claims = 0
        self._lock = threading.Lock()
        self._running: dict[int, JobContext] = {}
        self._side_stop = threading.Event()
        self._runners: list[threading.Thread] = []
        self._side: list[threading.Thread] = []

    # --- Life cycle ----------------------------------------------------------------------------

    def run(self) -> int:
        """Work until stopped (or `once`/`max_jobs` says done). Returns jobs finished."""
        self.start()
        try:
            while any(t.is_alive() for t in self._runners) and not self.stopping.is_set():
                time.sleep(0.05)
        finally:
            self.shutdown()
        return self.jobs_done

    def start(self) -> None:
        """Register the worker, release leftovers of its id, start every thread."""
        now = timezone.now()
        WorkerHeartbeat.objects.update_or_create(
            worker_id=self.worker_id,
            defaults={
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "concurrency": self.concurrency,
                "started_at": now,
                "heartbeat_at": now,
                "stopped_at": None,
                "jobs_done": 0,
            },
        )
        leftovers = services.release_worker_jobs(self.worker_id)
        if leftovers:
            log.warning("queue.worker_released_leftovers", worker_id=self.worker_id, jobs=leftovers)
        outbox.register_local_waker(self.wakeup)
        log.info(
            "queue.worker_started",
            worker_id=self.worker_id,
            concurrency=self.concurrency,
            vendor=connection.vendor,
        )
        self._spawn(self._heartbeat_loop, "heartbeat", side=True)
        if self.housekeeping:
            self._spawn(self._housekeeping_loop, "housekeeping", side=True)
        self._spawn(self._wakeup_loop, "wakeup", side=True)
        for index in range(self.concurrency):
            self._spawn(self._runner_loop, f"runner-{index}", side=False)
        connection.close()  # the main thread only supervises from here on

    def _spawn(self, target, name: str, *, side: bool) -> None:
        thread = threading.Thread(target=target, name=f"queue-{name}", daemon=True)
        (self._side if side else self._runners).append(thread)
        thread.start()

    def stop(self) -> None:
        """Stop claiming and let running handlers reach a checkpoint (thread- and signal-safe)."""
        self.stopping.set()
        self.wakeup.notify()

    def exit_now(self) -> None:
        """Skip the grace period: release running jobs' leases at once."""
        self.exiting.set()
        self.stop()

    def shutdown(self) -> None:
        """Wait up to the grace period for handlers, release what still runs, stop threads."""
        self.stop()
        deadline = time.monotonic() + self.grace_seconds
        while any(t.is_alive() for t in self._runners):
            if self.exiting.is_set() or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        released = self._release_running()
        self._side_stop.set()
        for thread in self._side:
            thread.join(timeout=2)
        try:
            WorkerHeartbeat.objects.filter(pk=self.worker_id).update(
                stopped_at=timezone.now(), jobs_done=self.jobs_done
            )
        except DatabaseError:
            log.exception("queue.worker_stop_unrecorded", worker_id=self.worker_id)
        finally:
            connection.close()
        (log.error if self.crashed else log.info)(
            "queue.worker_stopped",
            worker_id=self.worker_id,
            jobs_done=self.jobs_done,
            released=released,
            crashed=self.crashed,
        )

    def _release_running(self) -> int:
        with self._lock:
            contexts = list(self._running.values())
        released = 0
        for ctx in contexts:
            ctx.lease_lost.set()  # whatever the handler does next is no longer recorded
            try:
                if services.release_job(ctx.job, self.worker_id):
                    released += 1
            except DatabaseError:
                log.exception("queue.release_failed", job_id=ctx.job.pk)
        return released

    @property
    def stragglers(self) -> bool:
        """True when a handler thread is still running after `shutdown()`."""
        return any(t.is_alive() for t in self._runners)

    # --- Runner threads ------------------------------------------------------------------------

    def _runner_loop(self) -> None:
        try:
            self._claim_and_run()
        except BaseException:
            # Only a bug gets here (every job's own failure is recorded on the job): stop the
            # whole worker loudly so its process manager restarts it, never exit quietly.
            self.crashed = True
            log.exception("queue.runner_crashed", worker_id=self.worker_id)
            self.stop()
        finally:
            connection.close()

    def _claim_and_run(self) -> None:
        while not self.stopping.is_set():
            seen = self.wakeup.generation()
            if not self._reserve_claim():
                break
            try:
                did_work = self.run_one()
            except DatabaseError:
                log.exception("queue.claim_failed", worker_id=self.worker_id)
                connection.close()
                did_work = False
            except Exception:
                # Recording an outcome failed outside the database: the job's lease runs
                # out and the reaper retries it; this thread goes on with the next job.
                log.exception("queue.run_failed", worker_id=self.worker_id)
                connection.close()
                did_work = False
            if did_work:
                continue
            with self._lock:
                self._claims -= 1  # the reservation was not used
            if self.once:
                break
            close_old_connections()
            self.wakeup.wait(seen, self.poll_seconds)

    def _reserve_claim(self) -> bool:
        with self._lock:
            if self.max_jobs is not None and self._claims >= self.max_jobs:
                return False
            self._claims += 1
            return True

    def run_one(self) -> bool:
        """Claim one ready job and run it in this thread. Returns False when none was ready."""
        job = services.claim_next(self.worker_id, self.lease_seconds)
        if job is None:
            return False
        structlog.contextvars.bind_contextvars(job_id=job.pk, job_type=job.type)
        try:
            self._execute(job)
        finally:
            structlog.contextvars.unbind_contextvars("job_id", "job_type")
            with self._lock:
                self._running.pop(job.pk, None)
                self.jobs_done += 1
        return True

    def _execute(self, job: Job) -> None:
        try:
            spec = get_handler(job.type)
            payload = spec.parse(job.payload)
        except (UnknownJobType, InvalidJobPayload) as exc:
            services.fail_attempt(job, self.worker_id, exc, permanent=True)
            return
        ctx = JobContext(job, payload, self.worker_id, self.stopping)
        with self._lock:
            self._running[job.pk] = ctx
        try:
            spec.fn(ctx)
        except Reschedule as signal_:
            if self._cancel_requested(ctx):
                services.cancel_running_job(job, self.worker_id)
            else:
                services.reschedule_job(job, self.worker_id, signal_.delay_seconds)
        except JobCancelled:
            services.cancel_running_job(job, self.worker_id)
        except LeaseLost:
            log.warning("job.lease_lost", job_id=job.pk)
        except WorkerShuttingDown:
            services.release_job(job, self.worker_id)
        except Exception as exc:
            if ctx.lease_lost.is_set():
                log.warning("job.lease_lost", job_id=job.pk, error=services.error_text(exc))
            elif self._cancel_requested(ctx):
                services.cancel_running_job(job, self.worker_id)
            else:
                if not is_permanent(exc):
                    log.info("job.attempt_failed", job_id=job.pk, error=services.error_text(exc))
                services.fail_attempt(job, self.worker_id, exc, permanent=is_permanent(exc))
        else:
            services.complete_job(job, self.worker_id, ctx.follow_ups)

    def _cancel_requested(self, ctx: JobContext) -> bool:
        if ctx.cancel_seen.is_set():
            return True
        return Job.objects.filter(pk=ctx.job.pk, cancel_requested_at__isnull=False).exists()

    # --- Side threads --------------------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        try:
            while not self._side_stop.wait(self.heartbeat_seconds):
                try:
                    self.beat()
                except DatabaseError:
                    log.exception("queue.heartbeat_failed", worker_id=self.worker_id)
                    connection.close()
        finally:
            connection.close()

    def beat(self) -> None:
        """Extend this worker's leases; flag lost and cancel-requested jobs; record liveness."""
        now = timezone.now()
        with self._lock:
            contexts = dict(self._running)
        if contexts:
            with transaction.atomic():
                Job.objects.filter(
                    pk__in=list(contexts), state=JobState.RUNNING, locked_by=self.worker_id
                ).update(lease_expires_at=now + timedelta(seconds=self.lease_seconds))
                rows = list(
                    Job.objects.filter(pk__in=list(contexts)).values_list(
                        "pk", "state", "locked_by", "cancel_requested_at"
                    )
                )
            owned = set()
            for pk, state, locked_by, cancel_requested_at in rows:
                if state == JobState.RUNNING and locked_by == self.worker_id:
                    owned.add(pk)
                    if cancel_requested_at is not None:
                        contexts[pk].cancel_seen.set()
            for pk, ctx in contexts.items():
                if pk not in owned:
                    ctx.lease_lost.set()
        WorkerHeartbeat.objects.filter(pk=self.worker_id).update(
            heartbeat_at=now, jobs_done=self.jobs_done
        )

    def _housekeeping_loop(self) -> None:
        try:
            while not self._side_stop.wait(1.0):
                try:
                    periodic.run_due_tasks()
                except DatabaseError:
                    log.exception("queue.housekeeping_failed", worker_id=self.worker_id)
                    connection.close()
        finally:
            connection.close()

    def _wakeup_loop(self) -> None:
        if connection.vendor == "postgresql":
            self._listen_postgres()
        elif connection.vendor == "sqlite":
            self._watch_sqlite()

    def _listen_postgres(self) -> None:
        listener = None
        while not self._side_stop.is_set():
            try:
                if listener is None:
                    # A connection of its own, never the pool's: it is held for the
                    # worker's life and would keep a pooled one from ever coming back.
                    listener = psycopg.connect(**connection.get_connection_params())
                    listener.autocommit = True
                    listener.execute(f"LISTEN {outbox.NOTIFY_CHANNEL}")
                for _ in listener.notifies(timeout=0.5):
                    self.wakeup.notify()
            except Exception:
                log.exception("queue.listen_failed", worker_id=self.worker_id)
                if listener is not None:
                    listener.close()
                listener = None
                self._side_stop.wait(1.0)
        if listener is not None:
            listener.close()

    def _watch_sqlite(self) -> None:
        name = str(connection.settings_dict["NAME"])
        if name == ":memory:" or "mode=memory" in name:
            return  # nothing outside this process can write to it
        interval = settings.DOCE_QUEUE_SQLITE_WATCH_SECONDS
        watcher = sqlite3.connect(name, check_same_thread=False)
        try:
            last = None
            while not self._side_stop.wait(interval):
                version = watcher.execute("PRAGMA data_version").fetchone()[0]
                if last is not None and version != last:
                    self.wakeup.notify()
                last = version
        finally:
            watcher.close()
