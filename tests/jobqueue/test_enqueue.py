"""enqueue(): validation, deduplication, atomicity, events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from doce.models import Event
from jobqueue import InvalidJobPayload, UnknownJobType, enqueue
from jobqueue.models import Job, JobState
from tests.jobqueue.handlers import NoopPayload, SleepPayload

pytestmark = pytest.mark.django_db


def test_it_enqueues_a_validated_payload_with_defaults():
    job = enqueue("test.noop", {"n": "7"})
    job.refresh_from_db()
    assert job.state == JobState.QUEUED
    assert job.payload == {"n": 7}  # validated and normalised by the payload model
    assert job.attempts == 0
    assert job.max_attempts == 3
    assert job.priority == 0
    assert job.run_at <= timezone.now()


def test_it_accepts_a_payload_model_instance():
    job = enqueue("test.noop", NoopPayload(n=3))
    assert Job.objects.get(pk=job.pk).payload == {"n": 3}


def test_it_uses_the_handlers_default_max_attempts_unless_given():
    assert enqueue("test.fail", {}).max_attempts == 3
    assert enqueue("test.fail", {}, max_attempts=5).max_attempts == 5


def test_it_refuses_an_unknown_type_and_writes_nothing():
    with pytest.raises(UnknownJobType, match="no handler is registered for job type 'nope'"):
        enqueue("nope", {})
    assert not Job.objects.exists()
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    "payload",
    [{"n": "seven"}, [1, 2], "text", SleepPayload(seconds=1)],
)
def test_it_refuses_a_bad_payload_and_writes_nothing(payload):
    with pytest.raises(InvalidJobPayload) as caught:
        enqueue("test.noop", payload)
    assert "test.noop" in str(caught.value)
    assert not Job.objects.exists()


def test_it_names_the_bad_field():
    with pytest.raises(InvalidJobPayload, match="seconds: Input should be greater than or equal"):
        enqueue("test.sleep", {"seconds": -1})


def test_it_refuses_bad_options():
    with pytest.raises(InvalidJobPayload, match="max_attempts"):
        enqueue("test.noop", {}, max_attempts=0)
    with pytest.raises(InvalidJobPayload, match="dedupe_key"):
        enqueue("test.noop", {}, dedupe_key="x" * 201)
    with pytest.raises(InvalidJobPayload, match="timezone-aware"):
        enqueue("test.noop", {}, run_at=timezone.now().replace(tzinfo=None))
    assert not Job.objects.exists()


def test_it_refuses_a_non_json_payload_for_untyped_jobs():
    with pytest.raises(InvalidJobPayload, match="not JSON"):
        enqueue("test.untyped", {"when": object()})


def test_it_returns_the_active_job_when_the_dedupe_key_is_taken():
    first = enqueue("test.noop", {"n": 1}, dedupe_key="project.create:abc")
    second = enqueue("test.noop", {"n": 2}, dedupe_key="project.create:abc")
    assert second.pk == first.pk
    assert Job.objects.count() == 1


def test_it_frees_the_dedupe_key_when_the_job_finishes():
    for state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED):
        first = enqueue("test.noop", {}, dedupe_key="k")
        Job.objects.filter(pk=first.pk).update(state=state)
        assert enqueue("test.noop", {}, dedupe_key="k").pk != first.pk
        Job.objects.filter(dedupe_key="k", state=JobState.QUEUED).update(state=state)


def test_the_database_refuses_two_active_jobs_per_dedupe_key():
    Job.objects.create(type="test.noop", dedupe_key="k")
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.create(type="test.noop", dedupe_key="k", state=JobState.RUNNING)


def test_the_database_refuses_two_running_jobs_per_serial_key():
    Job.objects.create(type="test.noop", serial_key="project:a", state=JobState.RUNNING)
    Job.objects.create(type="test.noop", serial_key="project:a")  # queued is fine
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.create(type="test.noop", serial_key="project:a", state=JobState.RUNNING)


def test_it_rolls_back_with_the_callers_transaction():
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue("test.noop", {}, serial_key="project:a")
        raise RuntimeError("the caller's change failed")
    assert not Job.objects.exists()
    assert not Event.objects.exists()


def test_a_lost_dedupe_race_does_not_break_the_callers_transaction():
    with transaction.atomic():
        first = enqueue("test.noop", {}, dedupe_key="k")
        again = enqueue("test.noop", {}, dedupe_key="k")
        assert again.pk == first.pk
        Job.objects.create(type="test.noop")  # the transaction is still usable
    assert Job.objects.count() == 2


def test_it_writes_enqueued_events_to_the_queue_and_serial_key_topics():
    job = enqueue("test.noop", {}, serial_key="project:abc")
    events = list(Event.objects.order_by("topic"))
    assert [e.topic for e in events] == ["project:abc", "queue"]
    assert {e.type for e in events} == {"job.enqueued"}
    assert events[0].payload["job"]["id"] == job.pk
    assert events[0].payload["job"]["state"] == "queued"


def test_it_wakes_workers_after_commit(django_capture_on_commit_callbacks, monkeypatch):
    from jobqueue import outbox

    woken = []
    monkeypatch.setattr(outbox, "wake_local_workers", lambda: woken.append(1))
    with django_capture_on_commit_callbacks(execute=True):
        enqueue("test.noop", {})
    assert woken == [1]
    with django_capture_on_commit_callbacks(execute=True):
        enqueue("test.noop", {}, run_at=timezone.now() + timedelta(hours=1))
    assert woken == [1]  # a future job needs no wake-up
