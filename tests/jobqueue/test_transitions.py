"""Every state transition of a job, driven through `Worker.run_one()` in the test thread."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from doce.models import Event
from jobqueue import (
    cancel_job,
    enqueue,
    force_cancel_job,
    pause_queue,
    resume_queue,
    retry_job,
    run_job_now,
)
from jobqueue.models import Job, JobLog, JobState
from jobqueue.services import claim_next, reap_expired_leases
from tests.jobqueue import handlers

pytestmark = pytest.mark.django_db


def refreshed(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


def event_changes(job: Job) -> list[str]:
    return [
        e.payload["change"]
        for e in Event.objects.filter(topic="queue", type__startswith="job.").order_by("id")
        if e.payload.get("job", {}).get("id") == job.pk
    ]


def test_it_runs_a_job_to_success(worker):
    job = enqueue("test.noop", {}, serial_key="project:a")
    assert worker.run_one() is True
    job = refreshed(job)
    assert job.state == JobState.SUCCEEDED
    assert job.attempts == 1
    assert job.locked_by is None and job.lease_expires_at is None
    assert job.started_at and job.finished_at
    assert handlers.SEEN[job.pk] == [1]
    assert event_changes(job) == ["enqueued", "started", "succeeded"]
    assert Event.objects.filter(topic="project:a").count() == 3
    assert worker.run_one() is False


def test_it_claims_by_priority_then_run_at_then_creation(worker):
    now = timezone.now()
    late = enqueue("test.noop", {}, run_at=now - timedelta(seconds=1))
    early = enqueue("test.noop", {}, run_at=now - timedelta(seconds=5))
    urgent = enqueue("test.noop", {}, priority=10)
    same_time_second = enqueue("test.noop", {}, run_at=now - timedelta(seconds=5))
    order = []
    while (job := claim_next("w", 60)) is not None:
        order.append(job.pk)
        Job.objects.filter(pk=job.pk).update(state=JobState.SUCCEEDED)
    assert order == [urgent.pk, early.pk, same_time_second.pk, late.pk]


def test_it_does_not_claim_a_job_before_its_run_at(worker):
    enqueue("test.noop", {}, run_at=timezone.now() + timedelta(minutes=5))
    assert worker.run_one() is False


def test_it_skips_a_serial_key_that_has_a_running_job():
    first = enqueue("test.noop", {}, serial_key="project:a")
    second = enqueue("test.noop", {}, serial_key="project:a")
    other = enqueue("test.noop", {}, serial_key="project:b")
    assert claim_next("w1", 60).pk == first.pk
    assert claim_next("w2", 60).pk == other.pk  # second waits for first
    assert claim_next("w3", 60) is None
    Job.objects.filter(pk=first.pk).update(state=JobState.SUCCEEDED)
    assert claim_next("w3", 60).pk == second.pk


def test_it_claims_nothing_while_paused(worker):
    job = enqueue("test.noop", {})
    assert pause_queue() is True
    assert pause_queue() is False
    assert worker.run_one() is False
    assert refreshed(job).state == JobState.QUEUED
    assert resume_queue() is True
    assert worker.run_one() is True
    assert Event.objects.filter(type="queue.paused").count() == 1
    assert Event.objects.filter(type="queue.resumed").count() == 1


def test_it_retries_with_backoff_and_keeps_the_error_and_traceback(worker):
    job = enqueue("test.fail", {"message": "kaput"}, dedupe_key="d")
    before = timezone.now()
    worker.run_one()
    job = refreshed(job)
    assert job.state == JobState.QUEUED
    assert job.attempts == 1
    assert "ValueError: kaput on attempt 1" in job.last_error
    assert "sk-abcdefghijklmnop" not in job.last_error  # secrets are redacted
    assert before <= job.run_at <= timezone.now() + timedelta(seconds=2)
    entry = JobLog.objects.get(job=job)
    assert entry.level == "error" and entry.attempt == 1
    assert "Traceback" in entry.traceback and "raise ValueError" in entry.traceback
    assert "sk-abcdefghijklmnop" not in entry.traceback
    assert event_changes(job)[-1] == "retrying"


def test_it_fails_when_attempts_are_spent_and_frees_the_dedupe_key(worker):
    job = enqueue("test.fail", {}, dedupe_key="d")
    for _ in range(3):
        Job.objects.filter(pk=job.pk).update(run_at=timezone.now())
        assert worker.run_one() is True
    job = refreshed(job)
    assert job.state == JobState.FAILED
    assert job.attempts == 3
    assert handlers.SEEN[job.pk] == [1, 2, 3]
    assert job.finished_at is not None
    assert JobLog.objects.filter(job=job, level="error").count() == 3
    assert enqueue("test.fail", {}, dedupe_key="d").pk != job.pk


def test_a_retried_job_can_succeed(worker):
    job = enqueue("test.fail", {"succeed_on_attempt": 2})
    worker.run_one()
    Job.objects.filter(pk=job.pk).update(run_at=timezone.now())
    worker.run_one()
    job = refreshed(job)
    assert job.state == JobState.SUCCEEDED
    assert job.attempts == 2


@pytest.mark.parametrize("type", ["test.permanent", "test.foreign_permanent"])
def test_a_permanent_error_fails_at_once(worker, type):
    job = enqueue(type, {"message": "bad config"}, max_attempts=5)
    worker.run_one()
    job = refreshed(job)
    assert job.state == JobState.FAILED
    assert job.attempts == 1
    assert "bad config" in job.last_error


def test_reschedule_spends_no_attempt_and_records_no_error(worker):
    job = enqueue("test.reschedule", {"n": 4}, max_attempts=1)
    for _ in range(5):
        assert worker.run_one() is True
    job = refreshed(job)
    assert job.state == JobState.SUCCEEDED
    assert job.attempts == 1
    assert job.last_error == ""
    assert handlers.SEEN[job.pk] == [1, 1, 1, 1, 1]
    # Polling is invisible to watchers: one start, one outcome, nothing per poll.
    assert event_changes(job) == ["enqueued", "started", "succeeded"]


def test_reschedule_sets_run_at_to_now_plus_the_delay():
    from jobqueue.services import reschedule_job

    job = enqueue("test.noop", {})
    claimed = claim_next("w", 60)
    before = timezone.now()
    assert reschedule_job(claimed, "w", 30) is True
    job = refreshed(job)
    assert job.state == JobState.QUEUED
    assert job.attempts == 0
    assert before + timedelta(seconds=30) <= job.run_at <= timezone.now() + timedelta(seconds=30)


def test_it_cancels_a_queued_job_at_once_and_frees_its_dedupe_key():
    job = enqueue("test.noop", {}, dedupe_key="d")
    assert cancel_job(job.pk) is True
    job = refreshed(job)
    assert job.state == JobState.CANCELLED
    assert job.finished_at is not None
    assert cancel_job(job.pk) is False
    assert enqueue("test.noop", {}, dedupe_key="d").pk != job.pk


def test_cancel_of_a_running_job_requests_it(worker):
    job = enqueue("test.noop", {})
    claim_next("w", 60)
    assert cancel_job(job) is True
    job = refreshed(job)
    assert job.state == JobState.RUNNING
    assert job.cancel_requested_at is not None
    assert cancel_job(job) is False  # already requested
    assert event_changes(job)[-1] == "cancel_requested"


def test_cancel_requested_ends_the_job_cancelled_at_its_next_checkpoint(worker, monkeypatch):
    from jobqueue import registry

    def request_cancel_then_sleep(ctx):
        cancel_job(ctx.job.pk)  # as if a user clicked "cancel" while it runs
        handlers.sleep(ctx)

    spec = registry.get_handler("test.sleep")
    patched = registry.HandlerSpec(spec.type, request_cancel_then_sleep, spec.payload_model, None)
    monkeypatch.setitem(registry._HANDLERS, "test.sleep", patched)
    job = enqueue("test.sleep", {"seconds": 5})
    worker.run_one()
    job = refreshed(job)
    assert job.state == JobState.CANCELLED
    assert job.pk not in handlers.SEEN  # it stopped before the end of the sleep
    assert event_changes(job)[-1] == "cancelled"


def test_force_cancel_revokes_the_lease():
    job = enqueue("test.noop", {}, serial_key="project:a", dedupe_key="d")
    claim_next("w", 60)
    assert force_cancel_job(job) is True
    job = refreshed(job)
    assert job.state == JobState.CANCELLED
    assert job.locked_by is None
    assert "force-cancelled" in job.last_error
    assert force_cancel_job(job) is False
    # The serialization and dedupe keys are free again.
    nxt = enqueue("test.noop", {}, serial_key="project:a", dedupe_key="d")
    assert claim_next("w2", 60).pk == nxt.pk


def test_a_worker_whose_lease_was_revoked_records_nothing(worker):
    from jobqueue.services import complete_job

    job = enqueue("test.noop", {})
    claimed = claim_next("w", 60)
    force_cancel_job(job)
    assert complete_job(claimed, "w") is False
    assert refreshed(job).state == JobState.CANCELLED


def test_run_now_makes_a_future_job_due(worker):
    job = enqueue("test.noop", {}, run_at=timezone.now() + timedelta(hours=1))
    assert run_job_now(job) is True
    assert run_job_now(job) is False
    assert worker.run_one() is True
    assert refreshed(job).state == JobState.SUCCEEDED


def test_retry_enqueues_a_new_job_with_the_same_payload(worker):
    job = enqueue("test.permanent", {"message": "x"}, serial_key="project:a", priority=3)
    assert retry_job(job) is None  # still queued: nothing to retry
    worker.run_one()
    again = retry_job(job)
    assert again.pk != job.pk
    assert (again.type, again.payload, again.serial_key, again.priority) == (
        job.type,
        refreshed(job).payload,
        "project:a",
        3,
    )
    assert again.state == JobState.QUEUED and again.attempts == 0


def test_retry_refuses_a_succeeded_job(worker):
    job = enqueue("test.noop", {})
    worker.run_one()
    assert refreshed(job).state == JobState.SUCCEEDED
    assert retry_job(job) is None
    assert Job.objects.count() == 1


def test_an_unknown_type_at_run_time_fails_the_job(worker):
    job = Job.objects.create(type="gone.type", payload={})
    worker.run_one()
    job = refreshed(job)
    assert job.state == JobState.FAILED
    assert "no handler is registered" in job.last_error


def test_a_payload_invalid_at_run_time_fails_the_job(worker):
    job = Job.objects.create(type="test.noop", payload={"n": "not a number"})
    worker.run_one()
    job = refreshed(job)
    assert job.state == JobState.FAILED
    assert "n: Input should be a valid integer" in job.last_error


def test_follow_ups_are_written_when_the_job_succeeds(worker):
    job = enqueue("test.chain", {"steps_left": 2}, serial_key="project:a")
    worker.run_one()
    nxt = Job.objects.exclude(pk=job.pk).get()
    assert nxt.serial_key == "project:a"  # same serialization key by default
    assert nxt.payload == {"steps_left": 1, "fail_after_enqueue": False}
    worker.run_one()
    worker.run_one()
    assert Job.objects.filter(state=JobState.SUCCEEDED).count() == 3


def test_follow_ups_are_dropped_when_the_job_fails(worker):
    job = enqueue("test.chain", {"steps_left": 1, "fail_after_enqueue": True})
    worker.run_one()
    assert refreshed(job).state == JobState.FAILED
    assert Job.objects.count() == 1


def test_handler_logs_are_stored_redacted_and_emitted(worker):
    job = enqueue("test.chain", {"steps_left": 0})
    worker.run_one()
    entry = JobLog.objects.get(job=job)
    assert entry.message == "chain step"
    assert entry.fields == {"steps_left": 0, "api_key": "[redacted]"}
    event = Event.objects.get(topic="queue", type="job.log")
    assert event.payload["log"]["message"] == "chain step"


def test_the_reaper_requeues_an_expired_lease_and_the_attempt_counts():
    job = enqueue("test.noop", {})
    claim_next("dead-worker", 60)
    assert reap_expired_leases() == 0  # lease still valid
    later = timezone.now() + timedelta(seconds=61)
    assert reap_expired_leases(now=later) == 1
    job = refreshed(job)
    assert job.state == JobState.QUEUED
    assert job.attempts == 1
    assert job.locked_by is None
    assert event_changes(job)[-1] == "reclaimed"


def test_the_reaper_fails_an_expired_job_whose_attempts_are_spent():
    job = enqueue("test.noop", {}, max_attempts=1, dedupe_key="d")
    claim_next("dead-worker", 60)
    assert reap_expired_leases(now=timezone.now() + timedelta(seconds=61)) == 1
    job = refreshed(job)
    assert job.state == JobState.FAILED
    assert "lease expired" in job.last_error
    assert enqueue("test.noop", {}, dedupe_key="d").pk != job.pk  # key freed


def test_the_reaper_cancels_an_expired_job_with_a_cancel_request():
    job = enqueue("test.noop", {})
    claim_next("dead-worker", 60)
    cancel_job(job)
    reap_expired_leases(now=timezone.now() + timedelta(seconds=61))
    assert refreshed(job).state == JobState.CANCELLED


def test_a_heartbeat_keeps_the_lease_and_flags_lost_and_cancelled_jobs(worker):
    from jobqueue.context import JobContext

    a = enqueue("test.noop", {})
    b = enqueue("test.noop", {})
    c = enqueue("test.noop", {})
    contexts = {}
    for _ in range(3):
        job = claim_next(worker.worker_id, 1)
        contexts[job.pk] = JobContext(job, {}, worker.worker_id, worker.stopping)
    worker._running.update(contexts)
    force_cancel_job(b)
    cancel_job(c)
    worker.beat()
    assert refreshed(a).lease_expires_at > timezone.now() + timedelta(seconds=50)
    assert reap_expired_leases(now=timezone.now() + timedelta(seconds=5)) == 0
    assert not contexts[a.pk].lease_lost.is_set()
    assert contexts[b.pk].lease_lost.is_set()
    assert contexts[c.pk].cancel_seen.is_set()


@pytest.mark.parametrize("microsecond", [1480, 0, 123456])
def test_the_claim_and_success_events_match_the_jobs_own_shape(worker, monkeypatch, microsecond):
    # Trailing zeros and a whole second are where the SQL fast path and Python's isoformat
    # rendered timestamps differently.
    fixed = timezone.now().replace(microsecond=microsecond)
    monkeypatch.setattr("jobqueue.services.timezone.now", lambda: fixed)
    job = enqueue("test.noop", {}, serial_key="project:a", dedupe_key="d")
    worker.run_one()
    job = refreshed(job)
    started, succeeded = (
        Event.objects.filter(topic="queue", type__in=["job.started", "job.succeeded"])
        .order_by("id")
        .values_list("payload", flat=True)
    )
    assert succeeded == {"change": "succeeded", "job": job.as_event()}
    assert started["job"]["state"] == "running"
    assert started["job"]["locked_by"] == "test-worker"
    assert set(started["job"]) == set(job.as_event())
