"""doce's own origin: only pages of `DOCE_PUBLIC_URL`'s exact origin open doce's sockets
and post its forms."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import Client

from doce.origins import is_doce_origin, origin_of
from projects.models import Project
from tests.ws import session_cookie, ws_communicator


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://localhost:8000", "http://localhost:8000"),
        ("http://LocalHost:8000/", "http://localhost:8000"),
        ("http://localhost:80", "http://localhost"),
        ("https://doce.example.org:443/", "https://doce.example.org"),
        ("https://doce.example.org:8443", "https://doce.example.org:8443"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("ftp://localhost", None),
        ("localhost:8000", None),
        ("http://localhost:8000/app", None),
        ("http://user:pw@localhost:8000", None),
        ("http://localhost:99999", None),
        ("http://localhost:x", None),
        ("http://", None),
        ("null", None),
    ],
)
def test_it_normalizes_origins(url, origin):
    assert origin_of(url) == origin


def test_it_is_doce_origin_only_for_the_exact_origin(settings):
    settings.DOCE_ORIGIN = "http://localhost:8000"
    assert is_doce_origin("http://localhost:8000")
    assert is_doce_origin("HTTP://LOCALHOST:8000")
    for other in (
        "http://localhost:8001",  # another port of the same host: where previews used to run
        "https://localhost:8000",  # the other scheme
        "http://localhost",
        "http://p-0123456789abcdef.localhost:8000",  # a preview origin
        "http://127.0.0.1:8000",
        "http://localhost.evil.example:8000",
        "null",
        "",
        None,
    ):
        assert not is_doce_origin(other), other


def test_csrf_trusts_doce_origin_only():
    assert settings.CSRF_TRUSTED_ORIGINS == [settings.DOCE_ORIGIN]


@pytest.mark.django_db
def test_it_refuses_a_form_post_from_another_origin(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    page = client.get("/settings/")
    token = page.cookies["csrftoken"].value
    host = settings.DOCE_ORIGIN.split("://", 1)[1]
    post = {"csrfmiddlewaretoken": token, "model": "x/y"}
    for origin in ("http://p-0123456789abcdef.localhost:8000", "http://localhost:8001"):
        refused = client.post(
            "/settings/default-model", post, HTTP_ORIGIN=origin, HTTP_HOST=host, secure=False
        )
        assert refused.status_code == 403, origin
    allowed = client.post(
        "/settings/default-model", post, HTTP_ORIGIN=settings.DOCE_ORIGIN, HTTP_HOST=host
    )
    assert allowed.status_code != 403


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:8001",
        "https://localhost:8000",
        "http://p-0123456789abcdef.localhost:8000",
        "http://127.0.0.1:8000",
        "null",
    ],
)
async def test_it_refuses_a_websocket_from_another_origin(alice, origin):
    project = await sync_to_async(Project.objects.create)(owner=alice, name="Site", prompt="p")
    cookie = await sync_to_async(session_cookie)(alice)
    for path in (
        "/ws/projects/events/",
        f"/ws/projects/{project.id}/chat/",
        f"/ws/projects/{project.id}/logs/",
        "/ws/queue/events/",
    ):
        communicator = ws_communicator(path, cookie, origin=origin)
        connected, _ = await communicator.connect()
        assert not connected, (origin, path)


@pytest.mark.django_db(transaction=True)
async def test_it_accepts_a_websocket_from_doce_origin(alice):
    cookie = await sync_to_async(session_cookie)(alice)
    communicator = ws_communicator("/ws/projects/events/", cookie)
    connected, _ = await communicator.connect()
    assert connected
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_it_refuses_a_websocket_without_an_origin(alice):
    from channels.testing import WebsocketCommunicator

    from doce.asgi import application

    cookie = await sync_to_async(session_cookie)(alice)
    communicator = WebsocketCommunicator(
        application, "/ws/projects/events/", headers=[(b"cookie", cookie)]
    )
    connected, _ = await communicator.connect()
    assert not connected
