"""Housekeeping commands for cron, and run_worker's argument checks."""

import os
import socket
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from jobqueue import beat_health, enqueue
from jobqueue.management.commands.run_worker import container_worker_id
from jobqueue.models import Job, JobLog, JobState
from jobqueue.services import claim_next, write_log
from jobqueue.worker import Worker

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_queue_reap_recovers_expired_leases():
    job = enqueue("test.noop", {})
    claim_next("dead", 60)
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert run("queue_reap") == "Recovered 1 job(s) with an expired lease.\n"
    assert Job.objects.get(pk=job.pk).state == JobState.QUEUED


def test_queue_prune_deletes_old_finished_jobs_and_their_logs():
    old = enqueue("test.noop", {})
    write_log(old, "old line")
    recent = enqueue("test.noop", {})
    active = enqueue("test.noop", {})
    long_ago = timezone.now() - timedelta(days=8)
    Job.objects.filter(pk=old.pk).update(state=JobState.SUCCEEDED, finished_at=long_ago)
    Job.objects.filter(pk=recent.pk).update(state=JobState.FAILED, finished_at=timezone.now())
    assert run("queue_prune") == "Deleted 1 finished job(s) older than 7 day(s).\n"
    assert set(Job.objects.values_list("pk", flat=True)) == {recent.pk, active.pk}
    assert not JobLog.objects.exists()
    with pytest.raises(CommandError):
        call_command("queue_prune", "--days", "-1")


@pytest.mark.django_db(transaction=True)
def test_run_worker_once_drains_the_queue_and_exits():
    jobs = [enqueue("test.noop", {"n": n}) for n in range(3)]
    call_command("run_worker", "--once", "--concurrency", "2", "--no-housekeeping")
    assert {Job.objects.get(pk=j.pk).state for j in jobs} == {JobState.SUCCEEDED}


def test_run_worker_refuses_bad_arguments():
    for args in (["--concurrency", "0"], ["--max-jobs", "-3"], ["--worker-id", ""]):
        with pytest.raises(CommandError):
            call_command("run_worker", *args)


CONTAINER = "8e4bb2b48e96de7eed7c571148c132d96f6a11759dd231b6b6f272725dc76b3b"


def test_it_names_a_worker_after_its_container(tmp_path):
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "1254 1236 0:52 / / rw,relatime - overlay overlay rw\n"
        f"1270 1254 254:0 /var/lib/docker/containers/{CONTAINER}/hostname /etc/hostname "
        "rw,relatime - ext4 /dev/vda rw\n"
    )
    assert container_worker_id(mountinfo) == f"{socket.gethostname()}:container-8e4bb2b48e96"


def test_it_refuses_a_container_worker_id_outside_a_container(tmp_path):
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n")
    with pytest.raises(LookupError, match="not running in a Docker container"):
        container_worker_id(mountinfo)
    with pytest.raises(LookupError):
        container_worker_id(tmp_path / "missing")


def test_run_worker_takes_one_worker_id_option():
    with pytest.raises(CommandError, match="not both"):
        call_command("run_worker", "--worker-id", "w1", "--worker-id-from-container")


def test_a_heartbeat_touches_the_beat_file_for_the_health_check(tmp_path):
    beat = tmp_path / "beat"
    worker = Worker(worker_id="w-beat", concurrency=1, housekeeping=False, beat_file=beat)
    assert beat_health.main([str(beat)]) == 1  # no heartbeat yet
    worker.beat()
    assert beat.exists()
    assert beat_health.main([str(beat)]) == 0
    old = time.time() - 31
    os.utime(beat, (old, old))
    assert beat_health.main([str(beat)]) == 1  # a stale heartbeat: unhealthy
    assert beat_health.main([str(beat), "60"]) == 0


def test_a_beat_file_that_cannot_be_written_keeps_the_heartbeat(tmp_path):
    worker = Worker(
        worker_id="w-beat", concurrency=1, housekeeping=False, beat_file=tmp_path / "no" / "b"
    )
    worker.beat()  # logs a warning, raises nothing: the leases matter more
