"""Worker processes against real commits: kill -9 recovery, signals, concurrent enqueues,
and (Postgres) 4 processes x 2 threads over 2,000 jobs on 20 serialization keys."""

from __future__ import annotations

import itertools
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from django.db import connection, transaction

from jobqueue import enqueue
from jobqueue.models import Job, JobState
from tests.jobqueue.conftest import start_worker_process, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

FAST_LEASES = {
    "DOCE_QUEUE_LEASE_SECONDS": "1.0",
    "DOCE_QUEUE_HEARTBEAT_SECONDS": "0.2",
    "DOCE_QUEUE_REAP_SECONDS": "0.2",
}


def job_row(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


def started_by(record_dir: Path, job: Job) -> list[str]:
    return sorted(p.name.rsplit("-", 1)[1] for p in record_dir.glob(f"started-{job.pk}-*"))


def stop(process) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(10)


def test_a_job_of_a_killed_worker_is_reclaimed_after_its_lease_and_completes(tmp_path):
    job = enqueue("test.sleep", {"seconds": 2.5}, serial_key="project:k9")
    first = start_worker_process(tmp_path, "--concurrency", "1", **FAST_LEASES)
    second = None
    try:
        wait_for(lambda: started_by(tmp_path, job), timeout=60)  # process start-up under load
        # A second worker (running the reaper) must leave the job alone while its worker
        # still heartbeats, even past the lease length.
        second = start_worker_process(tmp_path, "--concurrency", "1", **FAST_LEASES)
        time.sleep(1.5)
        running = job_row(job)
        assert running.state == JobState.RUNNING
        assert running.locked_by.split(":")[1] == str(first.pid)
        first.send_signal(signal.SIGKILL)
        first.wait(5)
        wait_for(lambda: job_row(job).state == JobState.SUCCEEDED, timeout=20)
    finally:
        stop(first)
        if second is not None:
            stop(second)
    done = job_row(job)
    assert done.attempts == 2  # the killed attempt counts
    assert started_by(tmp_path, job) == sorted([str(first.pid), str(second.pid)])


def test_sigterm_releases_the_lease_of_a_job_that_never_checks_and_exits(tmp_path):
    job = enqueue("test.sleep", {"seconds": 30, "checkpoints": False})
    process = start_worker_process(
        tmp_path, "--concurrency", "1", DOCE_QUEUE_SHUTDOWN_GRACE_SECONDS="0.5"
    )
    try:
        wait_for(lambda: started_by(tmp_path, job), timeout=60)  # process start-up under load
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        stop(process)
    released = job_row(job)
    assert released.state == JobState.QUEUED
    assert released.locked_by is None
    assert released.attempts == 0


def test_a_second_signal_exits_at_once_and_still_releases(tmp_path):
    job = enqueue("test.sleep", {"seconds": 30, "checkpoints": False})
    process = start_worker_process(
        tmp_path, "--concurrency", "1", DOCE_QUEUE_SHUTDOWN_GRACE_SECONDS="60"
    )
    try:
        wait_for(lambda: started_by(tmp_path, job), timeout=60)  # process start-up under load
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 1
        assert time.monotonic() - signalled < 3
    finally:
        stop(process)
    assert job_row(job).state == JobState.QUEUED


def test_fifty_concurrent_enqueues_of_one_dedupe_key_make_one_active_job():
    barrier = threading.Barrier(50)
    results: list[int] = []
    errors: list[BaseException] = []

    def enqueue_once(n: int) -> None:
        try:
            barrier.wait(10)
            results.append(enqueue("test.noop", {"n": n}, dedupe_key="project.create:x").pk)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=enqueue_once, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(results) == 50
    assert len(set(results)) == 1
    assert Job.objects.active().filter(dedupe_key="project.create:x").count() == 1
    assert Job.objects.count() == 1


@pytest.mark.postgres
def test_four_workers_run_two_thousand_jobs_exactly_once_serialized_per_key(tmp_path):
    keys = [f"project:{n:02d}" for n in range(20)]
    with transaction.atomic():
        for n in range(2000):
            enqueue("test.record", {"n": n, "sleep_ms": 1}, serial_key=keys[n % 20])
    expected = set(Job.objects.values_list("pk", flat=True))
    workers = [
        start_worker_process(tmp_path, "--concurrency", "2", "--no-housekeeping") for _ in range(4)
    ]
    started = time.monotonic()
    try:
        wait_for(lambda: not Job.objects.active().exists(), timeout=120, interval=0.1)
        elapsed = time.monotonic() - started
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            process.wait(20)
    assert Job.objects.filter(state=JobState.SUCCEEDED, attempts=1).count() == 2000

    runs = defaultdict(list)
    by_key = defaultdict(list)
    pids = set()
    for path in tmp_path.glob("*.log"):
        for line in path.read_text().splitlines():
            job_id, start, end, key, pid = line.split()
            runs[int(job_id)].append(pid)
            by_key[key].append((int(start), int(end), int(job_id)))
            pids.add(pid)
    assert set(runs) == expected
    assert all(len(ran) == 1 for ran in runs.values()), "a job ran more than once"
    assert len(pids) >= 2, "the work was not spread over processes"
    for key, intervals in by_key.items():
        intervals.sort()
        for (_, end, a), (start, _, b) in itertools.pairwise(intervals):
            assert start >= end, f"jobs {a} and {b} of {key} overlapped"
    print(f"2000 jobs on 20 keys, 4x2 workers: {elapsed:.1f} s (incl. worker start-up)")
