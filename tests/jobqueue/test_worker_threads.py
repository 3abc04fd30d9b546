"""The threaded worker against real commits: shutdown, live cancellation, once/max-jobs,
periodic tasks, and the /healthz worker check."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from jobqueue import cancel_job, enqueue, register_periodic
from jobqueue.health import check_worker
from jobqueue.models import Job, JobState, WorkerHeartbeat
from jobqueue.periodic import run_due_tasks, unregister_periodic
from jobqueue.worker import Worker
from tests.jobqueue import handlers
from tests.jobqueue.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def state(job: Job) -> str:
    return Job.objects.values_list("state", flat=True).get(pk=job.pk)


def start(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


def test_it_drains_the_queue_with_once_and_stops():
    jobs = [enqueue("test.noop", {"n": i}) for i in range(20)]
    done = Worker(concurrency=3, once=True, housekeeping=False).run()
    assert done == 20
    assert {state(j) for j in jobs} == {JobState.SUCCEEDED}
    assert sorted(len(handlers.SEEN[j.pk]) for j in jobs) == [1] * 20


def test_it_stops_after_max_jobs():
    for i in range(5):
        enqueue("test.noop", {"n": i})
    assert Worker(concurrency=2, max_jobs=3, housekeeping=False).run() == 3
    assert Job.objects.filter(state=JobState.QUEUED).count() == 2


def test_an_idle_worker_starts_a_new_job_quickly():
    worker = Worker(concurrency=1, housekeeping=False, poll_seconds=5)
    thread = start(worker)
    try:
        time.sleep(0.2)
        job = enqueue("test.noop", {})
        wait_for(lambda: state(job) == JobState.SUCCEEDED, timeout=2)
    finally:
        worker.stop()
        thread.join(5)
    # Woken by the commit (NOTIFY or the SQLite change watch), not by the 5 s poll.
    started = Job.objects.get(pk=job.pk)
    assert (started.started_at - started.created_at).total_seconds() < 1.0


def test_cancel_stops_a_running_job_at_its_next_checkpoint():
    worker = Worker(concurrency=1, housekeeping=False)
    thread = start(worker)
    try:
        job = enqueue("test.sleep", {"seconds": 30})
        assert handlers.STARTED.wait(5)
        requested = time.monotonic()
        assert cancel_job(job) is True
        wait_for(lambda: state(job) == JobState.CANCELLED, timeout=5)
        assert time.monotonic() - requested < 2
    finally:
        worker.stop()
        thread.join(5)
    assert job.pk not in handlers.SEEN  # the handler never reached its end


def test_graceful_shutdown_releases_a_checkpointing_job_without_spending_an_attempt():
    worker = Worker(concurrency=1, housekeeping=False, grace_seconds=5)
    thread = start(worker)
    job = enqueue("test.sleep", {"seconds": 30})
    assert handlers.STARTED.wait(5)
    stopped = time.monotonic()
    worker.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - stopped < 2  # it left at the checkpoint, not after the grace
    job = Job.objects.get(pk=job.pk)
    assert job.state == JobState.QUEUED
    assert job.attempts == 0
    assert job.locked_by is None
    assert WorkerHeartbeat.objects.get(pk=worker.worker_id).stopped_at is not None


def test_graceful_shutdown_releases_the_lease_of_a_job_that_never_checks():
    worker = Worker(concurrency=1, housekeeping=False, grace_seconds=0.3)
    thread = start(worker)
    job = enqueue("test.sleep", {"seconds": 3, "checkpoints": False})
    assert handlers.STARTED.wait(5)
    worker.stop()
    thread.join(5)
    assert not thread.is_alive()
    job = Job.objects.get(pk=job.pk)
    assert job.state == JobState.QUEUED
    assert job.locked_by is None
    # The abandoned handler thread finishing later must not overwrite the released job.
    time.sleep(3.2)
    assert state(job) == JobState.QUEUED


def test_a_periodic_task_runs_once_per_interval_across_workers():
    calls = []
    register_periodic("test.tick", 60, lambda: calls.append(1))
    try:
        assert "test.tick" in run_due_tasks()
        assert "test.tick" not in run_due_tasks()  # a second worker in the same interval
        assert calls == [1]
        from jobqueue.models import PeriodicRun

        PeriodicRun.objects.filter(name="test.tick").update(
            last_run_at=timezone.now() - timedelta(seconds=61)
        )
        run_due_tasks()
        assert calls == [1, 1]
    finally:
        unregister_periodic("test.tick")


def test_a_failing_periodic_task_is_recorded_and_runs_again():
    from jobqueue.models import PeriodicRun

    def broken():
        raise RuntimeError("reconcile failed password=hunter2")

    register_periodic("test.broken", 60, broken)
    try:
        run_due_tasks()
        row = PeriodicRun.objects.get(name="test.broken")
        assert "RuntimeError: reconcile failed" in row.last_error
        assert "hunter2" not in row.last_error
    finally:
        unregister_periodic("test.broken")


def test_the_health_check_tells_never_started_alive_stopped_and_stale(settings):
    ok, details = check_worker()
    assert (ok, details["state"]) == (False, "never_started")
    worker = Worker(concurrency=1, housekeeping=False, heartbeat_seconds=0.1)
    thread = start(worker)
    try:
        wait_for(lambda: check_worker()[0])
        ok, details = check_worker()
        assert details["state"] == "alive" and details["heartbeat_age_s"] < 5
    finally:
        worker.stop()
        thread.join(5)
    ok, details = check_worker()
    assert (ok, details["state"]) == (False, "stopped")
    WorkerHeartbeat.objects.create(
        worker_id="killed",
        hostname="h",
        pid=1,
        concurrency=1,
        heartbeat_at=timezone.now() - timedelta(seconds=120),
    )
    WorkerHeartbeat.objects.filter(pk=worker.worker_id).update(
        heartbeat_at=timezone.now() - timedelta(seconds=200)
    )
    ok, details = check_worker()
    assert (ok, details["state"]) == (False, "stale")
    assert details["heartbeat_age_s"] >= 120
