"""The queue under faults: a row that cannot be decoded fails alone, a lease without an
expiry or a dead worker's job is reclaimed, a crashed runner never exits quietly, and
`manage.py serve` restarts a dead worker under its slot's id while the web server stays up.

Runs on SQLite and (make test's second pass) on Postgres.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jobqueue import enqueue
from jobqueue.models import Job, JobLog, JobState, WorkerHeartbeat
from jobqueue.services import claim_next, reap_expired_leases
from jobqueue.worker import Worker
from tests.jobqueue import handlers
from tests.jobqueue.conftest import ROOT, start_worker_process, wait_for, worker_env

pytestmark = pytest.mark.django_db(transaction=True)

DEEP_JSON = "[" * 1000 + "]" * 1000  # valid JSON to the database, too deep for json.loads


def spoil_payload(job: Job) -> None:
    cast = "::jsonb" if connection.vendor == "postgresql" else ""
    sql = f"UPDATE queue_job SET payload = %s{cast} WHERE id = %s"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [DEEP_JSON, job.pk])


def spoil_run_at(job: Job) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE queue_job SET run_at = '1999-99-99 99:99:99' WHERE id = %s", [job.pk]
        )


def row(job: Job) -> dict:
    """The job's columns that always decode."""
    return Job.objects.filter(pk=job.pk).values("state", "attempts", "last_error").get()


def test_it_fails_a_job_whose_payload_does_not_decode_and_runs_the_next():
    bad = enqueue("test.noop", {"n": 1}, serial_key="project:alice")
    good = enqueue("test.noop", {"n": 2}, serial_key="project:alice")
    spoil_payload(bad)
    assert Worker(concurrency=2, once=True, housekeeping=False).run() == 1
    failed = row(bad)
    assert failed["state"] == JobState.FAILED
    assert failed["attempts"] == 1
    assert "cannot be decoded" in failed["last_error"]
    assert "RecursionError" in failed["last_error"]
    assert JobLog.objects.filter(job_id=bad.pk, level="error").exists()
    assert row(good)["state"] == JobState.SUCCEEDED
    assert handlers.SEEN[good.pk] == [1]


def test_it_fails_a_job_whose_run_at_is_malformed():
    if connection.vendor != "sqlite":
        pytest.skip("Postgres timestamps cannot hold a malformed time: only SQLite can")
    bad = enqueue("test.noop", {"n": 1})
    good = enqueue("test.noop", {"n": 2})
    spoil_run_at(bad)
    assert claim_next("w-bob", 60).pk == good.pk
    failed = row(bad)
    assert failed["state"] == JobState.FAILED
    assert "ValueError" in failed["last_error"]


def test_a_worker_process_survives_a_bad_row_and_keeps_working(tmp_path):
    bad = enqueue("test.noop", {"n": 1})
    spoil_payload(bad)
    process = start_worker_process(tmp_path, "--concurrency", "2")
    try:
        wait_for(lambda: row(bad)["state"] == JobState.FAILED, timeout=60)
        later = enqueue("test.noop", {"n": 2})
        wait_for(lambda: row(later)["state"] == JobState.SUCCEEDED, timeout=60)
        assert process.poll() is None
    finally:
        process.kill()
        process.wait(10)


def lease(job: Job, worker_id: str, *, expires_in: float | None) -> None:
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(
        state=JobState.RUNNING,
        attempts=1,
        locked_by=worker_id,
        locked_at=now,
        lease_expires_at=None if expires_in is None else now + timedelta(seconds=expires_in),
    )


def test_the_reaper_treats_a_running_job_without_a_lease_expiry_as_expired():
    job = enqueue("test.noop", {"n": 1}, serial_key="project:charlie")
    lease(job, "w-gone", expires_in=None)
    assert reap_expired_leases() == 1
    assert row(job)["state"] == JobState.QUEUED


def test_the_reaper_reclaims_an_undecodable_running_row_and_every_other_one():
    spoiled = enqueue("test.noop", {"n": 1})
    plain = enqueue("test.noop", {"n": 2})
    spoil_payload(spoiled)
    lease(spoiled, "w-gone", expires_in=-5)
    lease(plain, "w-gone", expires_in=-5)
    assert reap_expired_leases() == 2
    assert {row(spoiled)["state"], row(plain)["state"]} == {JobState.QUEUED}


def heartbeat(worker_id: str, *, age_seconds: float, stopped: bool = False) -> None:
    beat = timezone.now() - timedelta(seconds=age_seconds)
    WorkerHeartbeat.objects.create(
        worker_id=worker_id,
        hostname="h",
        pid=1,
        concurrency=1,
        heartbeat_at=beat,
        stopped_at=beat if stopped else None,
    )


def test_the_reaper_reclaims_at_once_the_jobs_of_a_worker_whose_heartbeat_stopped(settings):
    settings.DOCE_QUEUE_HEARTBEAT_SECONDS = 5
    dead = enqueue("test.noop", {"n": 1})
    alive = enqueue("test.noop", {"n": 2})
    heartbeat("w-dead", age_seconds=16)  # more than 3 heartbeats of silence
    heartbeat("w-alive", age_seconds=1)
    # Both leases are fresh for another minute: only the heartbeat row tells them apart.
    lease(dead, "w-dead", expires_in=60)
    lease(alive, "w-alive", expires_in=60)
    assert reap_expired_leases() == 1
    assert row(dead)["state"] == JobState.QUEUED
    assert row(alive)["state"] == JobState.RUNNING


def test_a_runner_that_crashes_stops_the_worker_as_crashed(monkeypatch):
    class Bug(BaseException):
        pass

    def crash(self):
        raise Bug

    monkeypatch.setattr(Worker, "run_one", crash)
    worker = Worker(concurrency=1, housekeeping=False)
    worker.run()
    assert worker.crashed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_serve_restarts_a_killed_worker_under_the_same_id_and_keeps_the_web_up(tmp_path):
    port, web_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve"],
        cwd=ROOT,
        env=worker_env(tmp_path, DOCE_PORT=str(port), DOCE_WEB_PORT=str(web_port)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        first = wait_for(lambda: WorkerHeartbeat.objects.first(), timeout=90)
        wait_for(lambda: answers(port), timeout=90)
        os.kill(first.pid, signal.SIGKILL)
        restarted = wait_for(
            lambda: (
                WorkerHeartbeat.objects.exclude(pid=first.pid)
                .filter(worker_id=first.worker_id)
                .first()
            ),
            timeout=90,
        )
        assert restarted.worker_id.endswith(":serve")
        assert answers(port) and answers(web_port)  # the edge, and daphne behind it
        assert process.poll() is None
    finally:
        # SIGINT lets serve stop its children (killing serve would orphan them).
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert code == 0
    assert WorkerHeartbeat.objects.count() == 1
