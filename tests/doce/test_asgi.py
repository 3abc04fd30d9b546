"""The ASGI application end to end: HTTP through Django, WebSockets through auth."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import HttpCommunicator, WebsocketCommunicator

from doce.asgi import application
from projects.models import Project
from tests.ws import refusal_code, session_cookie, ws_communicator

pytestmark = pytest.mark.django_db(transaction=True)


_ws = ws_communicator


async def test_it_serves_a_page_over_http(alice):
    communicator = HttpCommunicator(application, "GET", "/login", headers=[(b"host", b"localhost")])
    response = await communicator.get_response()
    assert response["status"] == 200
    assert b"Sign in to doce" in response["body"]


async def test_it_refuses_an_anonymous_websocket(alice):
    project = await sync_to_async(Project.objects.create)(owner=alice, name="Site", prompt="p")
    communicator = _ws(f"/ws/projects/{project.id}/events/")
    assert await refusal_code(communicator) == 4401


async def test_it_refuses_another_users_project_as_not_found(alice, bob):
    project = await sync_to_async(Project.objects.create)(owner=alice, name="Site", prompt="p")
    cookie = await sync_to_async(session_cookie)(bob)
    communicator = _ws(f"/ws/projects/{project.id}/events/", cookie)
    assert await refusal_code(communicator) == 4404


async def test_it_refuses_a_foreign_origin(alice):
    project = await sync_to_async(Project.objects.create)(owner=alice, name="Site", prompt="p")
    cookie = await sync_to_async(session_cookie)(alice)
    communicator = WebsocketCommunicator(
        application,
        f"/ws/projects/{project.id}/events/",
        headers=[(b"origin", b"http://evil.example"), (b"cookie", cookie)],
    )
    connected, _ = await communicator.connect()
    assert not connected
