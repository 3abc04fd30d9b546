"""The /queue monitor pages, their actions, and the live WebSocket streams."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from doce.routing import websocket_urlpatterns
from jobqueue import enqueue
from jobqueue.models import Job, JobState
from projects.models import Project, project_topic
from tests.ws import refusal_code

pytestmark = pytest.mark.django_db


@pytest.fixture
def bobs_project(bob):
    return Project.objects.create(owner=bob, name="Bob's site", prompt="a bakery")


@pytest.fixture
def bobs_job(bobs_project):
    return enqueue("test.noop", {}, serial_key=project_topic(bobs_project.id))


@pytest.fixture
def charlies_job(charlie):
    project = Project.objects.create(owner=charlie, name="C", prompt="x")
    return enqueue("test.noop", {}, serial_key=project_topic(project.id))


def test_it_requires_sign_in(client):
    response = client.get("/queue/")
    assert response.status_code == 302


def test_a_user_sees_only_the_jobs_of_their_projects(bob_client, bobs_job, charlies_job):
    enqueue("test.noop", {})  # a job of no project: staff only
    response = bob_client.get("/queue/")
    assert response.status_code == 200
    body = response.content.decode()
    assert f"#{bobs_job.pk}<" in body
    assert f"#{charlies_job.pk}<" not in body
    assert "Pause queue" not in body


def test_staff_see_every_job_and_can_pause(alice_client, bobs_job, charlies_job):
    body = alice_client.get("/queue/").content.decode()
    assert f"#{bobs_job.pk}<" in body and f"#{charlies_job.pk}<" in body
    assert "Pause queue" in body
    assert alice_client.post("/queue/pause").status_code == 302
    assert "Resume queue" in alice_client.get("/queue/").content.decode()


def test_it_filters_and_paginates(alice_client):
    for n in range(30):
        enqueue("test.noop", {"n": n})
    failed = enqueue("test.permanent", {})
    Job.objects.filter(pk=failed.pk).update(state=JobState.FAILED)
    body = alice_client.get("/queue/?state=failed").content.decode()
    assert f"#{failed.pk}<" in body and body.count('<tr id="job-') == 1
    page = alice_client.get("/queue/").content.decode()
    assert page.count('<tr id="job-') == 25 and "Page 1 of 2" in page
    assert (
        alice_client.get("/queue/?type=test.permanent&partial=1")
        .content.decode()
        .count('<tr id="job-')
        == 1
    )
    assert alice_client.get(f"/queue/?q={failed.pk}").content.decode().count('<tr id="job-') == 1
    assert alice_client.get("/queue/?state=bogus&page=99").status_code == 200


def test_another_users_job_is_a_404_everywhere(bob_client, charlies_job):
    pk = charlies_job.pk
    assert bob_client.get(f"/queue/jobs/{pk}/").status_code == 404
    for action in ("cancel", "retry", "run-now", "force-cancel"):
        assert bob_client.post(f"/queue/jobs/{pk}/{action}").status_code == 404
    assert Job.objects.get(pk=pk).state == JobState.QUEUED


def test_the_owner_reads_the_detail_with_its_log(bob_client, bobs_job):
    from jobqueue.services import write_log

    write_log(bobs_job, "pulling image", level="info", step=1)
    body = bob_client.get(f"/queue/jobs/{bobs_job.pk}/").content.decode()
    assert "pulling image" in body
    assert "Force cancel" not in body


def test_the_owner_cancels_and_retries(bob_client, bobs_job):
    response = bob_client.post(f"/queue/jobs/{bobs_job.pk}/cancel", {"next": "/queue/"})
    assert response.status_code == 302 and response["Location"] == "/queue/"
    assert Job.objects.get(pk=bobs_job.pk).state == JobState.CANCELLED
    response = bob_client.post(f"/queue/jobs/{bobs_job.pk}/retry")
    new = Job.objects.exclude(pk=bobs_job.pk).get()
    assert response["Location"] == f"/queue/jobs/{new.pk}/"
    assert new.serial_key == bobs_job.serial_key


def test_it_refuses_to_retry_a_succeeded_job(bob_client, bobs_job):
    Job.objects.filter(pk=bobs_job.pk).update(state=JobState.SUCCEEDED)
    assert f"/queue/jobs/{bobs_job.pk}/retry" not in bob_client.get("/queue/").content.decode()
    page = bob_client.get(f"/queue/jobs/{bobs_job.pk}/").content.decode()
    assert f"/queue/jobs/{bobs_job.pk}/retry" not in page
    response = bob_client.post(f"/queue/jobs/{bobs_job.pk}/retry", follow=True)
    assert "only a failed or cancelled job can be retried" in response.content.decode()
    assert Job.objects.count() == 1


def test_it_ignores_an_offsite_next(bob_client, bobs_job):
    response = bob_client.post(
        f"/queue/jobs/{bobs_job.pk}/cancel", {"next": "https://evil.example/"}
    )
    assert response["Location"] == f"/queue/jobs/{bobs_job.pk}/"


def test_non_staff_cannot_pause_or_force_cancel(bob_client, bobs_job):
    assert bob_client.post("/queue/pause").status_code == 404
    assert bob_client.post(f"/queue/jobs/{bobs_job.pk}/force-cancel").status_code == 404
    assert bob_client.get("/queue/pause").status_code == 405


def test_the_nav_links_the_queue(bob_client):
    assert 'href="/queue/"' in bob_client.get("/queue/").content.decode()


async def _refusal(user, path):
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = user or AnonymousUser()
    return await refusal_code(communicator)


async def _connect(user, path):
    # The router without the session middleware: the test puts the user in the scope.
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = user or AnonymousUser()
    connected, code = await communicator.connect()
    return communicator, connected, code


@pytest.mark.django_db(transaction=True)
async def test_the_monitor_stream_sends_own_project_job_events_only(bob, charlie):
    project = await database_sync_to_async(Project.objects.create)(owner=bob, name="B", prompt="x")
    other = await database_sync_to_async(Project.objects.create)(
        owner=charlie, name="C", prompt="x"
    )
    communicator, connected, _ = await _connect(bob, "/ws/queue/events/?after=0")
    assert connected
    try:
        await database_sync_to_async(enqueue)("test.noop", {}, serial_key=project_topic(other.id))
        mine = await database_sync_to_async(enqueue)(
            "test.noop", {}, serial_key=project_topic(project.id)
        )
        message = await communicator.receive_json_from(timeout=5)
        assert message["type"] == "job.enqueued"
        assert message["payload"]["job"]["id"] == mine.pk
        assert await communicator.receive_nothing(timeout=0.3)
    finally:
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_the_job_stream_refuses_another_users_job(bob, charlie):
    project = await database_sync_to_async(Project.objects.create)(
        owner=charlie, name="C", prompt="x"
    )
    job = await database_sync_to_async(enqueue)(
        "test.noop", {}, serial_key=project_topic(project.id)
    )
    assert await _refusal(bob, f"/ws/queue/jobs/{job.pk}/events/") == 4404
    assert await _refusal(None, "/ws/queue/events/") == 4401


@pytest.mark.django_db(transaction=True)
async def test_the_job_stream_sends_that_jobs_changes_and_log_lines(alice):
    job = await database_sync_to_async(enqueue)("test.noop", {})
    other = await database_sync_to_async(enqueue)("test.noop", {})
    communicator, connected, _ = await _connect(alice, f"/ws/queue/jobs/{job.pk}/events/")
    assert connected
    try:
        from jobqueue.services import cancel_job, write_log

        await database_sync_to_async(cancel_job)(other.pk)
        await database_sync_to_async(write_log)(job, "hello")
        await database_sync_to_async(cancel_job)(job.pk)
        first = await communicator.receive_json_from(timeout=5)
        second = await communicator.receive_json_from(timeout=5)
        assert first["type"] == "job.log" and first["payload"]["log"]["message"] == "hello"
        assert second["type"] == "job.cancelled" and second["payload"]["job"]["id"] == job.pk
    finally:
        await communicator.disconnect()
