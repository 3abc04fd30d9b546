"""Outbox hygiene: a project waiting for its stack to answer writes no outbox rows while it
polls, and old events are pruned by the worker's housekeeping while recent ones stay."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from doce.events import emit, prune_events
from doce.models import Event
from jobqueue import enqueue
from jobqueue.models import Job, JobState
from jobqueue.periodic import registered_periodic
from jobqueue.worker import Worker
from projects.models import Project
from projects.streams import project_topic
from tests.jobqueue.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

QUIET_SECONDS = 10


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_it_writes_no_outbox_rows_while_a_project_waits_for_readiness(alice):
    project = Project.objects.create(
        owner=alice,
        name="Alice's bakery",
        prompt="a bakery",
        status=Project.Status.STARTING,
        preview_port=closed_port(),
        agent_port=closed_port(),
    )
    job = enqueue(
        "docker.waitReady",
        {"project_id": project.id, "started_at": time.time(), "then_session": False},
        serial_key=project_topic(project.id),
    )
    worker = Worker(concurrency=1, housekeeping=False, poll_seconds=0.05)
    runner = threading.Thread(target=worker.run, daemon=True)
    runner.start()
    try:
        # The first claim may announce the job; from the first reschedule on it polls.
        wait_for(lambda: Job.objects.filter(pk=job.pk, polling=True).exists(), timeout=15)
        before = Event.objects.count()
        time.sleep(QUIET_SECONDS)
        written = Event.objects.count() - before
        polls = Job.objects.get(pk=job.pk)
    finally:
        worker.stop()
        runner.join(30)
    print(json.dumps({"outbox_rows_per_second_waiting_for_readiness": written / QUIET_SECONDS}))
    assert written == 0
    assert polls.state in (JobState.QUEUED, JobState.RUNNING)
    assert polls.attempts <= 1  # polling spends no attempts


def test_pruning_removes_old_events_and_keeps_recent_ones():
    old = emit("project:old", "project.status", {"status": "running"})
    recent = emit("project:new", "project.status", {"status": "running"})
    Event.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=25))
    assert prune_events(timedelta(hours=24)) == 1
    assert list(Event.objects.values_list("pk", flat=True)) == [recent.pk]


def test_the_worker_housekeeping_prunes_events_by_the_configured_age(settings):
    settings.DOCE_EVENTS_PRUNE_AFTER_HOURS = 1
    task = next(t for t in registered_periodic() if t.name == "events.prune")
    old = emit("project:old", "project.status", {})
    recent = emit("project:new", "project.status", {})
    Event.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=2))
    task.fn()
    assert list(Event.objects.values_list("pk", flat=True)) == [recent.pk]
