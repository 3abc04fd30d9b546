"""Owner-only previews: entry tokens, the preview cookie and the raw `/.doce/*` handler
(`projects.preview_access`) in-process; through the real edge in
tests/integration/test_edge.py."""

from __future__ import annotations

import time
from unittest import mock

import pytest
from asgiref.testing import ApplicationCommunicator

from projects import preview_access
from projects.models import PreviewEntry, Project

pytestmark = pytest.mark.django_db(transaction=True)


async def _call(path: str, headers=(), query: bytes = b"") -> tuple[int, dict, bytes]:
    async def django(scope, receive, send):  # what the handler must not reach for /.doce/*
        raise AssertionError("passed to Django")

    app = preview_access.PreviewAccessApp(django)
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": query,
        "headers": [(k.encode(), v.encode()) for k, v in headers],
    }
    comm = ApplicationCommunicator(app, scope)
    await comm.send_input({"type": "http.request", "body": b""})
    start = await comm.receive_output(5)
    body = await comm.receive_output(5)
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body["body"]


def _project(owner, **fields) -> Project:
    return Project.objects.create(owner=owner, name="p", prompt="p", **fields)


async def test_the_check_lets_only_the_owner_in(alice, bob):
    from asgiref.sync import sync_to_async

    project = await sync_to_async(_project)(alice)
    other = await sync_to_async(_project)(bob)
    header = "x-doce-preview-project"
    ok = preview_access.cookie_value(alice.pk, project.id)
    cookie = f"{preview_access.COOKIE_NAME}={ok}"
    status, _, _ = await _call("/.doce/auth", [(header, project.id), ("cookie", cookie)])
    assert status == 204
    # Bound to the project: alice's cookie is nothing on bob's preview, bob's on hers.
    assert (await _call("/.doce/auth", [(header, other.id), ("cookie", cookie)]))[0] == 404
    bobs = f"{preview_access.COOKIE_NAME}={preview_access.cookie_value(bob.pk, project.id)}"
    assert (await _call("/.doce/auth", [(header, project.id), ("cookie", bobs)]))[0] == 404
    # No cookie, no project header, a tampered cookie, a malformed Cookie header: 404.
    assert (await _call("/.doce/auth", [(header, project.id)]))[0] == 404
    assert (await _call("/.doce/auth", [("cookie", cookie)]))[0] == 404
    bad = f"{preview_access.COOKIE_NAME}={ok[:-1]}x"
    assert (await _call("/.doce/auth", [(header, project.id), ("cookie", bad)]))[0] == 404
    junk = [(header, project.id), ("cookie", 'doce_preview="\\x00;;=')]
    assert (await _call("/.doce/auth", junk))[0] == 404
    assert (await _call("/.doce/other", []))[0] == 404


def test_an_expired_cookie_is_refused(alice, settings):
    project = _project(alice)
    with mock.patch(
        "time.time", return_value=time.time() - settings.DOCE_PREVIEW_COOKIE_SECONDS - 5
    ):
        old = preview_access.cookie_value(alice.pk, project.id)
    assert preview_access.cookie_user(old, project.id) is None
    fresh = preview_access.cookie_value(alice.pk, project.id)
    assert preview_access.cookie_user(fresh, project.id) == alice.pk


def test_a_token_is_redeemed_once(alice):
    project = _project(alice)
    token = preview_access.entry_token(alice.pk, project.id)
    assert preview_access.redeem(token, project.id) == alice.pk
    assert preview_access.redeem(token, project.id) is None
    assert PreviewEntry.objects.count() == 1
    PreviewEntry.objects.update(used_at="2000-01-01T00:00:00Z")
    assert preview_access.prune_entries() == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [("/", "/"), ("/a/b?c=1", "/a/b?c=1"), ("//evil.example/", "/"), ("/\\evil", "/"),
     ("https://evil.example/", "/"), ("", "/")],
)  # fmt: skip
def test_next_stays_on_the_preview(value, expected):
    assert preview_access.safe_next(value) == expected


async def test_ask_allows_only_existing_preview_hosts(alice, settings):
    from asgiref.sync import sync_to_async

    settings.DOCE_PREVIEW_DOMAIN = "previews.example.net"
    settings.DOCE_DOMAIN = "doce.example.org"
    project = await sync_to_async(_project)(alice)
    for domain, status in [
        (f"p-{project.id}.previews.example.net", 200),
        ("doce.example.org", 200),
        ("p-0000000000000000.previews.example.net", 404),
        (f"p-{project.id}.elsewhere.example", 404),
        ("example.com", 404),
        ("", 404),
    ]:
        got = await _call("/.doce/ask", query=f"domain={domain}".encode())
        assert got[0] == status, domain
