"""Open WebSockets follow the session: logout, a password change and a deactivation close
them (`accounts.signals`), and a closed socket takes no more prompts."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import Client

from doce.consumers import CLOSE_REAUTHENTICATE, CLOSE_UNAUTHENTICATED
from jobqueue.models import Job
from projects.models import Project
from tests.ws import refusal_code, ws_communicator

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


def _cookie(client: Client) -> bytes:
    name = settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}".encode()


def _signed_in(user) -> tuple[Client, bytes]:
    client = Client()
    client.force_login(user)
    return client, _cookie(client)


async def _open(path: str, cookie: bytes):
    communicator = ws_communicator(path, cookie)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def _close_code(communicator) -> int:
    while True:
        output = await communicator.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            return output["code"]


@pytest.fixture
def project(alice):
    return Project.objects.create(owner=alice, name="Site", prompt="p")


async def test_logout_closes_that_sessions_sockets_and_no_prompt_is_queued(alice, project):
    client, cookie = await sync_to_async(_signed_in)(alice)
    _other_client, other_cookie = await sync_to_async(_signed_in)(alice)
    chat = await _open(f"/ws/projects/{project.id}/chat/", cookie)
    events = await _open("/ws/projects/events/", cookie)
    elsewhere = await _open("/ws/projects/events/", other_cookie)

    response = await sync_to_async(client.post)("/logout")
    assert response.status_code == 302

    assert await _close_code(chat) == CLOSE_UNAUTHENTICATED
    assert await _close_code(events) == CLOSE_UNAUTHENTICATED
    assert await elsewhere.receive_nothing(timeout=0.3)  # another browser stays signed in
    # The page that sends a prompt now finds no socket; a new one is refused.
    again = ws_communicator(f"/ws/projects/{project.id}/chat/", cookie)
    assert await refusal_code(again) == CLOSE_UNAUTHENTICATED
    await again.send_to(text_data=json.dumps({"type": "prompt", "text": "hi"}))
    jobs = Job.objects.filter(type="opencode.sendUserPrompt")
    assert await jobs.acount() == 0
    await elsewhere.disconnect()


async def test_a_password_change_closes_every_socket_and_only_the_changer_gets_back(alice):
    changer, changer_cookie = await sync_to_async(_signed_in)(alice)
    _stale, stale_cookie = await sync_to_async(_signed_in)(alice)
    here = await _open("/ws/projects/events/", changer_cookie)
    there = await _open("/ws/projects/events/", stale_cookie)

    response = await sync_to_async(changer.post)(
        "/settings/password",
        {
            "old_password": "alice-pass-1",
            "new_password1": "a-new-long-passphrase-17",
            "new_password2": "a-new-long-passphrase-17",
        },
    )
    assert response.status_code == 302

    assert await _close_code(here) == CLOSE_REAUTHENTICATE
    assert await _close_code(there) == CLOSE_REAUTHENTICATE
    # The browsers reconnect: the changer's session holds (under a new key, as Django cycles
    # it), the other one is signed out.
    back = await _open("/ws/projects/events/", _cookie(changer))
    assert await back.receive_nothing(timeout=0.2)
    await back.disconnect()
    assert await refusal_code(ws_communicator("/ws/projects/events/", stale_cookie)) == 4401


async def test_deactivation_closes_the_users_sockets(alice, bob, project):
    _client, cookie = await sync_to_async(_signed_in)(alice)
    _bob_client, bob_cookie = await sync_to_async(_signed_in)(bob)
    chat = await _open(f"/ws/projects/{project.id}/chat/", cookie)
    bobs = await _open("/ws/projects/events/", bob_cookie)

    alice.is_active = False
    await sync_to_async(alice.save)()

    assert await _close_code(chat) == CLOSE_REAUTHENTICATE
    again = ws_communicator(f"/ws/projects/{project.id}/chat/", cookie)
    assert await refusal_code(again) == CLOSE_UNAUTHENTICATED
    assert await bobs.receive_nothing(timeout=0.3)  # nobody else is touched
    await bobs.disconnect()


async def test_a_sign_in_elsewhere_closes_nothing(alice):
    _client, cookie = await sync_to_async(_signed_in)(alice)
    socket = await _open("/ws/projects/events/", cookie)
    await sync_to_async(_signed_in)(alice)  # updates last_login only
    assert await socket.receive_nothing(timeout=0.3)
    await socket.disconnect()
