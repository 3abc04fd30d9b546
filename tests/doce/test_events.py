"""The outbox: atomic with the change, streamed in order, resumable after a reconnect."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import transaction

from doce import events
from doce.asgi import application
from doce.models import Event
from projects.models import Project, project_topic
from tests.ws import session_cookie


@pytest.mark.django_db(transaction=True)
def test_it_writes_nothing_when_the_change_rolls_back():
    with pytest.raises(RuntimeError), transaction.atomic():
        events.emit("project:abc", "project.status", {"status": "running"})
        raise RuntimeError("the change failed")
    assert not Event.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_it_reads_events_after_an_id_in_order():
    first = events.emit("project:a", "one")
    events.emit("project:b", "other-topic")
    third = events.emit("project:a", "three")
    assert [e.type for e in events.events_after(["project:a"], 0)] == ["one", "three"]
    assert [e.id for e in events.events_after(["project:a"], first.id)] == [third.id]
    assert events.last_event_id(["project:a"]) == third.id
    assert events.last_event_id(["nothing"]) == 0


@pytest.mark.django_db(transaction=True)
async def test_it_streams_new_events_and_resumes_after_reconnect(alice, settings):
    settings.DOCE_EVENTS_POLL_SECONDS = 0.1
    project = await sync_to_async(Project.objects.create)(owner=alice, name="Site", prompt="p")
    topic = project_topic(project.id)
    cookie = await sync_to_async(session_cookie)(alice)
    headers = [(b"origin", b"http://localhost"), (b"cookie", cookie)]
    path = f"/ws/projects/{project.id}/events/"

    viewer = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await viewer.connect()
    assert connected
    await sync_to_async(events.emit)(topic, "project.status", {"status": "starting"})
    message = await viewer.receive_json_from(timeout=5)
    assert (message["type"], message["payload"]) == ("project.status", {"status": "starting"})
    last_seen = message["id"]
    await viewer.disconnect()

    # Two changes while the viewer is away, then a reconnect from the last id it saw.
    await sync_to_async(events.emit)(topic, "project.status", {"status": "running"})
    await sync_to_async(events.emit)(topic, "job.succeeded", {"job": 7})
    again = WebsocketCommunicator(application, f"{path}?after={last_seen}", headers=headers)
    connected, _ = await again.connect()
    assert connected
    missed = [await again.receive_json_from(timeout=5) for _ in range(2)]
    assert [m["type"] for m in missed] == ["project.status", "job.succeeded"]
    assert await again.receive_nothing(timeout=0.3)
    await again.disconnect()
