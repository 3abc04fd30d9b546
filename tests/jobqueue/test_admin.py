"""The queue admin: read-only rows, actions that report counts, pause/resume."""

import pytest

from jobqueue import enqueue
from jobqueue.models import Job, JobState
from jobqueue.services import is_paused

pytestmark = pytest.mark.django_db


def action(client, name, jobs):
    return client.post(
        "/admin/queue/job/",
        {"action": name, "_selected_action": [j.pk for j in jobs]},
        follow=True,
    )


def test_it_lists_filters_and_searches(alice_client):
    job = enqueue("test.noop", {}, dedupe_key="project.create:abc", serial_key="project:abc")
    assert alice_client.get("/admin/queue/job/?state=queued").status_code == 200
    for q in (str(job.pk), "project.create", "project:abc", "not-a-number"):
        assert alice_client.get(f"/admin/queue/job/?q={q}").status_code == 200
    assert f"{job.pk}" in alice_client.get("/admin/queue/job/?q=abc").content.decode()
    page = alice_client.get(f"/admin/queue/job/{job.pk}/change/")
    assert page.status_code == 200
    assert alice_client.get("/admin/queue/job/add/").status_code == 403


def test_its_actions_report_how_many_rows_they_touched(alice_client):
    queued = enqueue("test.noop", {})
    done = enqueue("test.noop", {})
    Job.objects.filter(pk=done.pk).update(state=JobState.FAILED)
    response = action(alice_client, "cancel_jobs", [queued, done])
    assert "Cancelled or requested cancel of 1 of 2 selected job(s)." in response.content.decode()
    response = action(alice_client, "retry_jobs", [queued, done])
    assert "Retried 2 of 2 selected job(s)." in response.content.decode()
    response = action(alice_client, "run_jobs_now", [queued])
    assert "Made due now 0 of 1" in response.content.decode()
    fresh = Job.objects.filter(state=JobState.QUEUED).first()
    response = action(alice_client, "force_cancel_jobs", [fresh])
    assert "Force-cancelled 1 of 1" in response.content.decode()


def test_it_pauses_and_resumes(alice_client):
    assert "Pause queue" in alice_client.get("/admin/queue/job/").content.decode()
    alice_client.post("/admin/queue/job/pause/")
    assert is_paused()
    alice_client.post("/admin/queue/job/resume/")
    assert not is_paused()
    assert alice_client.get("/admin/queue/job/pause/").status_code == 405


def test_members_cannot_reach_it(bob_client):
    assert bob_client.get("/admin/queue/job/").status_code == 302
    assert bob_client.post("/admin/queue/job/pause/").status_code == 302
    assert not is_paused()
