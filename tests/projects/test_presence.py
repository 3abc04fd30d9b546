"""Presence: viewers (open workspace WebSockets) start stopped projects and keep running ones
from being stopped as idle; and the chat queues prompts for projects that are not running."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.core.management import call_command
from django.utils import timezone

from doce.opencode.relay import RelayHub, set_relay_hub
from doce.opencode.stream import StreamItem
from jobqueue.models import Job
from projects import presence, services
from projects.models import Project, Viewer
from projects.routing import websocket_urlpatterns
from tests.projects.conftest import MODEL, make_project, project_jobs

app = URLRouter(websocket_urlpatterns)


def types_of(project) -> list[str]:
    return [job_type for job_type, _ in project_jobs(project)]


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


# --- Viewers and idle stop (database level) -----------------------------------------------


@pytest.mark.django_db
def test_it_starts_a_stopped_project_for_its_first_viewer(alice, alice_provider):
    project = make_project(alice, Project.Status.STOPPED)
    presence.viewer_joined(project, alice, "chan-1")
    project.refresh_from_db()
    assert project.status == Project.Status.STARTING
    assert project.last_viewed_at is not None
    assert types_of(project) == ["docker.ensureRunning"]
    # A second viewer of the now starting project starts nothing more.
    presence.viewer_joined(project, alice, "chan-2")
    assert types_of(project) == ["docker.ensureRunning"]
    assert Viewer.objects.filter(project=project).count() == 2


@pytest.mark.django_db
def test_it_starts_nothing_for_a_viewer_of_a_running_project(alice, alice_provider):
    project = make_project(alice)
    presence.viewer_joined(project, alice, "chan-1")
    assert types_of(project) == []


@pytest.mark.django_db
def test_it_keeps_viewers_fresh_and_forgets_them(alice, alice_provider):
    project = make_project(alice)
    presence.viewer_joined(project, alice, "chan-1")
    Viewer.objects.update(heartbeat_at=ago(60))
    presence.viewer_heartbeat("chan-1")
    assert Viewer.objects.get().heartbeat_at > ago(5)
    presence.viewer_left("chan-1")
    assert not Viewer.objects.exists()
    presence.viewer_heartbeat("chan-1")  # a late heartbeat of a gone viewer is harmless
    presence.viewer_left("chan-1")


@pytest.mark.django_db
def test_it_finds_idle_projects_honouring_viewers_and_the_idle_time(
    alice, alice_provider, settings
):
    settings.DOCE_IDLE_STOP_SECONDS = 300
    settings.DOCE_VIEWER_TTL_SECONDS = 90
    never_viewed = make_project(alice)
    long_ago = make_project(alice, last_viewed_at=ago(301))
    recent = make_project(alice, last_viewed_at=ago(299))
    watched = make_project(alice, last_viewed_at=ago(3600))
    stale_viewer = make_project(alice, last_viewed_at=ago(3600))
    make_project(alice, Project.Status.STOPPED, last_viewed_at=ago(3600))
    working = make_project(alice, last_viewed_at=ago(3600), prompt_sent=True)
    active = make_project(alice)
    Viewer.objects.create(project=watched, user=alice, channel_name="a", heartbeat_at=ago(30))
    Viewer.objects.create(project=stale_viewer, user=alice, channel_name="b", heartbeat_at=ago(91))
    # Idle time counts from the last activity too (status changes, prompts), not only views.
    Project.objects.exclude(pk=active.pk).update(updated_at=ago(3600))

    idle = {p.id for p in services.idle_projects()}
    # `working`: its agent is still answering a prompt; `active`: changed just now.
    assert idle == {never_viewed.id, long_ago.id, stale_viewer.id}
    assert working.id not in idle and active.id not in idle

    settings.DOCE_IDLE_STOP_SECONDS = 30
    assert recent.id in {p.id for p in services.idle_projects()}


@pytest.mark.django_db
def test_it_stops_idle_projects_from_the_command(alice, alice_provider, settings):
    settings.DOCE_IDLE_STOP_SECONDS = 300
    idle = make_project(alice, last_viewed_at=ago(600))
    busy = make_project(alice, last_viewed_at=ago(10))
    Viewer.objects.create(project=busy, user=alice, channel_name="gone", heartbeat_at=ago(3600))
    Project.objects.update(updated_at=ago(600))  # no recent activity either

    from io import StringIO

    out = StringIO()
    call_command("stop_idle_projects", stdout=out)
    assert "Stopped 1 idle project(s); forgot 1 stale viewer(s)." in out.getvalue()
    idle.refresh_from_db()
    busy.refresh_from_db()
    assert idle.status == Project.Status.STOPPING and types_of(idle) == ["docker.stop"]
    assert busy.status == Project.Status.RUNNING and types_of(busy) == []
    assert not Viewer.objects.exists()
    # Run again: the stopping project is no longer running, so nothing more happens.
    call_command("stop_idle_projects", stdout=out)
    assert types_of(idle) == ["docker.stop"]


# --- The workspace events WebSocket is the viewer -----------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
async def test_it_records_a_viewer_per_open_workspace_socket(alice, alice_provider, settings):
    settings.DOCE_VIEWER_HEARTBEAT_SECONDS = 1
    project = await database_sync_to_async(make_project)(alice, Project.Status.STOPPED)
    communicator = WebsocketCommunicator(app, f"/ws/projects/{project.id}/events/")
    communicator.scope["user"] = alice
    connected, _ = await communicator.connect()
    assert connected

    viewer = await eventually(lambda: Viewer.objects.first())  # written after the accept
    assert viewer.project_id == project.id and viewer.user_id == alice.pk
    await database_sync_to_async(project.refresh_from_db)()
    assert project.status == Project.Status.STARTING
    assert await database_sync_to_async(types_of)(project) == ["docker.ensureRunning"]
    # The started project's status change is streamed to the viewer.
    event = await communicator.receive_json_from(timeout=5)
    assert event["type"] == "project.status" and event["payload"]["status"] == "starting"

    first_beat = viewer.heartbeat_at
    await database_sync_to_async(Viewer.objects.update)(heartbeat_at=ago(60))
    await eventually(lambda: Viewer.objects.filter(heartbeat_at__gt=first_beat).exists())

    await communicator.disconnect()
    assert not await database_sync_to_async(Viewer.objects.exists)()


async def eventually(check, timeout: float = 5.0):
    """Poll `check()` (run in a thread: it may query) until truthy; returns its value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await database_sync_to_async(check)()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


# --- The chat queues prompts for projects that are not running ----------------------------


class IdleStream:
    """An upstream agent event stream that never sends anything."""

    def __init__(self, target_provider) -> None:
        self.target_provider = target_provider

    async def items(self):
        await self.target_provider()
        await asyncio.Event().wait()
        yield StreamItem("event", event={})  # pragma: no cover


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
@pytest.mark.parametrize("status", [Project.Status.STOPPED, Project.Status.STARTING])
async def test_it_queues_a_chat_prompt_for_a_project_that_is_not_running(
    alice, alice_provider, status
):
    set_relay_hub(RelayHub(linger=0.05, stream_factory=IdleStream))
    project = await database_sync_to_async(make_project)(alice, status)
    communicator = WebsocketCommunicator(app, f"/ws/projects/{project.id}/chat/")
    communicator.scope["user"] = alice
    connected, _ = await communicator.connect()
    assert connected
    history = json.loads(await communicator.receive_from(timeout=5))
    assert history["type"] == "chat.history"

    await communicator.send_to(text_data=json.dumps({"type": "prompt", "text": "Make it pink"}))
    while True:
        message = json.loads(await communicator.receive_from(timeout=5))
        if message["type"] == "chat.ack":
            break
    assert message["payload"] == {"action": "prompt", "queued": True}
    types = await database_sync_to_async(types_of)(project)
    expected = ["docker.ensureRunning", "opencode.sendUserPrompt"]
    assert types == expected
    prompt = await database_sync_to_async(Job.objects.get)(type="opencode.sendUserPrompt")
    assert prompt.payload["text"] == "Make it pink" and prompt.payload["model"] == MODEL

    # A prompt the service refuses is answered with chat.error; nothing is queued.
    await communicator.send_to(
        text_data=json.dumps({"type": "prompt", "text": "hi", "model": "openai/gpt-9"})
    )
    while True:
        message = json.loads(await communicator.receive_from(timeout=5))
        if message["type"] == "chat.error":
            break
    assert message["payload"]["code"] == "rejected"
    assert "openai/gpt-9" in message["payload"]["message"]
    assert await database_sync_to_async(types_of)(project) == expected
    await communicator.disconnect()
