"""The security walk: every page, API route, WebSocket route, file, log and export URL that
takes one of Alice's objects (a project, a job of her project, a provider key, an API token)
is a 404 for Bob (WebSocket: closed with 4404) and asks anonymous users to sign in (401,
4401) — and none of those requests changes anything.

The list of routes is checked against the URL resolver, the OpenAPI schema and the
WebSocket routing: a route added later that takes such an object fails
`test_it_walks_every_route_that_takes_someone_elses_object` until it is walked here.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from accounts.services import create_api_token
from doce.routing import websocket_urlpatterns
from jobqueue.models import Job, JobState
from productions.models import Domain, Release
from projects import services, views
from tests.projects.conftest import MODEL, session_cookie, snapshot, ws_communicator

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

# URL parameters naming an object someone owns.
OWNED_PARAMS = {"project_id", "job_id", "credential_id", "token_id"}
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Case:
    """One URL of Alice's: `kind` http, api or ws; `methods` the ones the route accepts."""

    kind: str
    url: str
    methods: tuple[str, ...] = ("GET",)
    data: dict = field(default_factory=dict)
    # API cases: the OpenAPI path template this URL is an instance of.
    template: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{'/'.join(self.methods)}:{self.url}"


P = "/projects/{p}"
CASES = [
    # Pages and forms of the workspace
    Case("http", f"{P}/"),
    *[
        Case("http", f"{P}/actions/{name}", ("POST",), {"next": "dashboard"})
        for name in views._ACTIONS
    ],
    Case("http", f"{P}/rename", ("POST",), {"name": "Bob's now"}),
    Case("http", f"{P}/model", ("POST",), {"model": MODEL}),
    Case("http", f"{P}/jobs/{{j}}/retry", ("POST",)),
    # Files, assets, export
    Case("http", f"{P}/files/"),
    Case("http", f"{P}/files/?path=package.json"),
    Case("http", f"{P}/files/?path=src/pages/index.astro"),
    Case("http", f"{P}/assets/"),
    Case("http", f"{P}/assets/upload", ("POST",), {"file": "upload"}),
    Case("http", f"{P}/assets/rename", ("POST",), {"path": "public/logo.png", "name": "b.png"}),
    Case("http", f"{P}/assets/delete", ("POST",), {"path": "public/logo.png"}),
    Case("http", f"{P}/export"),
    # The Deploy tab and its forms (productions)
    Case("http", f"{P}/deploy/"),
    Case("http", f"{P}/deploy/run", ("POST",)),
    Case("http", f"{P}/deploy/stop", ("POST",)),
    Case("http", f"{P}/deploy/releases/{'a' * 64}/activate", ("POST",)),
    Case("http", f"{P}/deploy/domains/add", ("POST",), {"name": "www.bakery.example"}),
    Case("http", f"{P}/deploy/domains/remove", ("POST",), {"name": "www.bakery.example"}),
    # The redirect into the preview (a fresh entry token): only the owner gets one.
    Case("http", f"{P}/preview/enter"),
    # The queue monitor's pages and actions for a job of Alice's project
    Case("http", "/queue/jobs/{j}/"),
    Case("http", "/queue/jobs/{j}/?partial=1"),
    Case("http", "/queue/jobs/{j}/cancel", ("POST",)),
    Case("http", "/queue/jobs/{j}/retry", ("POST",)),
    Case("http", "/queue/jobs/{j}/run-now", ("POST",)),
    Case("http", "/queue/jobs/{j}/force-cancel", ("POST",)),
    # Alice's provider key and API token
    Case("http", "/settings/providers/{c}/delete", ("POST",)),
    Case("http", "/settings/providers/{c}/test", ("POST",)),
    Case("http", "/settings/providers/{c}/fetch-models", ("POST",)),
    Case("http", "/settings/tokens/{t}/revoke", ("POST",)),
    # The JSON API
    Case("api", "/api/projects/{p}", ("GET", "DELETE"), template="/api/projects/{project_id}"),
    Case(
        "api",
        "/api/projects/{p}/prompt",
        ("POST",),
        {"text": "make it pink"},
        "/api/projects/{project_id}/prompt",
    ),
    Case("api", "/api/projects/{p}/stop", ("POST",), template="/api/projects/{project_id}/stop"),
    Case("api", "/api/projects/{p}/messages", template="/api/projects/{project_id}/messages"),
    Case("api", "/api/projects/{p}/start", ("POST",), template="/api/projects/{project_id}/start"),
    Case("api", "/api/projects/{p}/retry", ("POST",), template="/api/projects/{project_id}/retry"),
    Case(
        "api",
        "/api/projects/{p}/restore",
        ("POST",),
        {"message_id": "msg_abc"},
        "/api/projects/{project_id}/restore",
    ),
    Case(
        "api",
        "/api/projects/{p}/unrestore",
        ("POST",),
        template="/api/projects/{project_id}/unrestore",
    ),
    # The production API (productions)
    Case(
        "api",
        "/api/projects/{p}/deployments",
        ("POST",),
        template="/api/projects/{project_id}/deployments",
    ),
    Case(
        "api",
        "/api/projects/{p}/production",
        ("GET", "DELETE"),
        template="/api/projects/{project_id}/production",
    ),
    Case("api", "/api/projects/{p}/releases", template="/api/projects/{project_id}/releases"),
    Case(
        "api",
        f"/api/projects/{{p}}/releases/{'a' * 64}/activate",
        ("POST",),
        template="/api/projects/{project_id}/releases/{release_id}/activate",
    ),
    Case(
        "api",
        "/api/projects/{p}/domains",
        ("GET", "POST"),
        {"name": "www.bakery.example"},
        "/api/projects/{project_id}/domains",
    ),
    Case(
        "api",
        "/api/projects/{p}/domains/www.bakery.example",
        ("DELETE",),
        template="/api/projects/{project_id}/domains/{name}",
    ),
    # WebSockets: live events, chat, log tail, a job's live log
    Case("ws", "/ws/projects/{p}/events/"),
    Case("ws", "/ws/projects/{p}/events/?after=0"),
    Case("ws", "/ws/projects/{p}/chat/"),
    Case("ws", "/ws/projects/{p}/logs/"),
    Case("ws", "/ws/projects/{p}/logs/?offset=0"),
    Case("ws", "/ws/queue/jobs/{j}/events/"),
]


@pytest.fixture
def world(alice, bob, alice_project, alice_provider):
    """Alice's project with a failed setup job and a queued one, her provider and a token."""
    failed = services.enqueue_step(alice_project, "project.create")
    Job.objects.filter(pk=failed.pk).update(state=JobState.FAILED, last_error="boom")
    services.enqueue_step(alice_project, "docker.composeUp")
    # A release and a custom domain of Alice's site (the Deploy routes name them).
    Release.objects.create(project=alice_project, release_id="a" * 64, kind="static", commit="1")
    Domain.objects.create(project=alice_project, name="www.bakery.example")
    token, _ = create_api_token(alice, "laptop")
    return {
        "p": alice_project.id,
        "j": failed.pk,
        "c": alice_provider.pk,
        "t": token.pk,
    }


def _url(case: Case, ids: dict) -> str:
    return case.url.format(**{key: ids[key] for key in ("p", "j", "c", "t")})


def _http(client, method: str, url: str, data: dict, kind: str):
    path, _, query = url.partition("?")
    if query:
        path = url
    if method == "POST" and kind == "http":
        body = {
            k: (SimpleUploadedFile("x.png", b"\x89PNG") if v == "upload" else v)
            for k, v in data.items()
        }
        return client.post(path, body)
    if kind == "api" and data:
        return client.generic(method, path, json.dumps(data), "application/json")
    return client.generic(method, path)


def _ws_outcome(path: str, cookie: bytes | None) -> tuple[str, object]:
    """('rejected', code) when the handshake was refused; ('closed', code) when accepted and
    closed before anything was sent; ('sent', message) when the consumer sent data."""

    async def run():
        communicator = ws_communicator(path, cookie)
        connected, code = await communicator.connect(timeout=5)
        if not connected:
            return "rejected", code
        output = await communicator.receive_output(timeout=5)
        await communicator.disconnect()
        if output["type"] == "websocket.close":
            return "closed", output.get("code")
        return "sent", output

    return async_to_sync(run)()


@pytest.mark.parametrize("who", ["bob", "anonymous"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_it_hides_alices_objects_from_everyone_else(client, bob, world, case, who):
    if who == "bob":
        client.force_login(bob)
    url = _url(case, world)
    before = snapshot()

    if case.kind == "ws":
        cookie = session_cookie(bob) if who == "bob" else None
        outcome, detail = _ws_outcome(url, cookie)
        expected = 4404 if who == "bob" else 4401
        assert outcome in ("rejected", "closed"), f"{url} sent {detail!r} to {who}"
        assert detail == expected
        assert snapshot() == before
        return

    for method in METHODS:
        response = _http(client, method, url, case.data, case.kind)
        body = response.content.decode(errors="replace")
        if method not in case.methods:
            if case.kind == "http" and who == "anonymous" and response.status_code == 302:
                continue  # login_required before the method check: nothing was revealed
            assert response.status_code == 405, f"{method} {url} as {who}"
        elif who == "bob":
            assert response.status_code == 404, f"{method} {url} as bob"
            if case.kind == "api":
                assert response.json() == {"detail": "Not Found"}
        elif case.kind == "api":
            assert response.status_code == 401, f"{method} {url} anonymously"
        else:
            assert response.status_code == 302, f"{method} {url} anonymously"
            assert urlsplit(response["Location"]).path == "/login"
        assert "bakery" not in body.lower() and "boom" not in body
        assert snapshot() == before, f"{method} {url} as {who} changed something"


# --- Coverage: the walk must include every route that takes an owned object -----------------


def _http_routes(patterns=None, prefix=""):
    """(full route, parameter names) of every URL pattern."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        names = set(getattr(pattern.pattern, "converters", {}) or {})
        names |= set(pattern.pattern.regex.groupindex)
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            for sub_route, sub_names in _http_routes(pattern.url_patterns, route):
                yield sub_route, names | sub_names
        elif isinstance(pattern, URLPattern):
            yield route, names


def test_it_walks_every_route_that_takes_someone_elses_object(alice_client, world):
    owned = {
        route
        for route, names in _http_routes()
        if names & OWNED_PARAMS and not route.startswith("admin/")
    }
    walked = {
        resolve(urlsplit(_url(case, world)).path).route
        for case in CASES
        if case.kind in ("http", "api")
    }
    assert walked == owned

    # The API: every operation on a path with a parameter, method by method.
    schema = alice_client.get("/api/openapi.json").json()
    operations = {
        (method.upper(), path)
        for path, ops in schema["paths"].items()
        if "{" in path
        for method in ops
    }
    assert operations == {
        (method, case.template) for case in CASES if case.kind == "api" for method in case.methods
    }

    # WebSockets: every route with an owned object in its path.
    owned_ws = {
        route.pattern.regex.pattern
        for route in websocket_urlpatterns
        if set(route.pattern.regex.groupindex) & OWNED_PARAMS
    }
    walked_ws = {
        # The route the router picks: the first that matches (the last one catches all).
        next(
            route.pattern.regex.pattern
            for route in websocket_urlpatterns
            if route.pattern.regex.match(urlsplit(_url(case, world)).path.lstrip("/"))
        )
        for case in CASES
        if case.kind == "ws"
    }
    assert walked_ws == owned_ws
    # Every project action of the menu is walked.
    assert {
        m.group(1) for case in CASES if (m := re.search(r"/actions/([a-z-]+)$", case.url))
    } == set(views._ACTIONS)


def test_it_lets_the_owner_through_on_the_same_urls(alice_client, world):
    """The walk's 404s come from ownership, not from broken URLs: Alice gets her pages."""
    from projects.models import Project

    # With a preview port, the owner is redirected into her preview.
    Project.objects.filter(pk=world["p"]).update(preview_port=47990, agent_port=47991)
    for case in CASES:
        if case.kind == "http" and case.methods == ("GET",):
            url = _url(case, world)
            expected = 302 if url.endswith("/preview/enter") else 200
            assert alice_client.get(url).status_code == expected, url
    assert alice_client.get(f"/api/projects/{world['p']}").status_code == 200
    outcome, _ = _ws_outcome(f"/ws/projects/{world['p']}/logs/", session_cookie(world_user(world)))
    assert outcome == "sent"


def world_user(world):
    from projects.models import Project

    return Project.objects.get(pk=world["p"]).owner


@pytest.mark.parametrize(
    "url",
    [
        "/admin/projects/project/{p}/change/",
        "/admin/projects/project/{p}/delete/",
        "/admin/projects/project/{p}/history/",
        "/admin/queue/job/{j}/change/",
        "/admin/queue/job/{j}/delete/",
        "/admin/accounts/providercredential/{c}/change/",
        "/admin/accounts/apitoken/{t}/change/",
    ],
)
def test_it_keeps_members_out_of_the_admin(client, bob, world, url):
    client.force_login(bob)
    url = url.format(**world)
    before = snapshot()
    for method in ("GET", "POST"):
        response = client.generic(method, url)
        assert response.status_code == 302
        assert urlsplit(response["Location"]).path == "/admin/login/"
    assert snapshot() == before


def test_it_lists_none_of_alices_things_to_bob(client, bob, world):
    client.force_login(bob)
    for url in ("/", "/queue/", "/queue/?partial=1", "/settings/"):
        response = client.get(url)
        assert response.status_code == 200
        body = response.content.decode()
        assert world["p"] not in body and "bakery" not in body.lower(), url
    assert client.get("/api/projects").json() == []


def test_it_streams_none_of_alices_events_to_bob(alice, bob, world):
    """The streams that take no id (dashboard, queue monitor) carry only the user's own
    topics: an event of Alice's project reaches Alice's sockets and none of Bob's."""
    from projects.models import Project

    async def run():
        sockets = {}
        for who, user in (("alice", alice), ("bob", bob)):
            cookie = await database_sync_to_async(session_cookie)(user)
            for path in ("/ws/projects/events/", "/ws/queue/events/"):
                communicator = ws_communicator(path, cookie)
                connected, _ = await communicator.connect(timeout=5)
                assert connected
                sockets[(who, path)] = communicator
        await asyncio.sleep(0.2)  # let each stream settle on its starting cursor
        project = await database_sync_to_async(Project.objects.get)(pk=world["p"])
        await database_sync_to_async(services.rename_project)(project, "Renamed bakery")
        await database_sync_to_async(services.enqueue_step)(project, "docker.ensureRunning")
        seen = {}
        for key, communicator in sockets.items():
            if key[0] == "alice":
                seen[key] = await communicator.receive_json_from(timeout=5)
            else:
                assert await communicator.receive_nothing(timeout=1.0), key
        for communicator in sockets.values():
            await communicator.disconnect()
        return seen

    seen = async_to_sync(run)()
    assert seen[("alice", "/ws/projects/events/")]["type"] == "project.renamed"
    assert seen[("alice", "/ws/queue/events/")]["type"].startswith("job.")
