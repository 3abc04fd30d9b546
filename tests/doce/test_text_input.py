"""Control characters in text inputs: refused with a 4xx or a socket error, never stored.

`make test` runs this file twice: on SQLite (which stored NUL) and on Postgres (which
answered 500 `DataError` to it). Personas: alice (an administrator), bob (a member).
"""

from __future__ import annotations

import json
import re

import pytest
from channels.db import database_sync_to_async
from django.contrib.messages import get_messages
from django.test import Client

from accounts.models import ApiToken, ProviderCredential
from accounts.services import create_api_token
from doce.text import LINE_PATTERN, TEXT_PATTERN, InvalidText, clean_line, clean_text
from jobqueue.models import Job
from projects.models import Project
from tests.jobqueue.conftest import _close_stray_postgres_sessions  # noqa: F401 (the socket test)
from tests.projects.conftest import MODEL, make_project, project_jobs
from tests.ws import session_cookie, ws_communicator

NUL = "a\x00b"


@pytest.fixture
def bob_provider(bob):
    return ProviderCredential.objects.create(
        user=bob, kind="openrouter", provider_id="openrouter", api_key="sk-or-v1-bob-key-123456",
        model_names=["google/gemini-2.5-flash"],
    )  # fmt: skip


@pytest.fixture
def bob_api(bob, bob_provider):
    _, token = create_api_token(bob, "tests")
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def post_json(client: Client, url: str, body) -> object:
    return client.post(url, json.dumps(body), content_type="application/json")


# --- the rules -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["a\x00b", "bell\x07", "esc\x1b[31m", "del\x7f", "\ud800"])
def test_it_refuses_control_characters_and_lone_surrogates_in_text(text):
    with pytest.raises(InvalidText):
        clean_text(text)
    with pytest.raises(InvalidText):
        clean_line(text)


def test_it_keeps_tabs_and_newlines_in_free_text_and_folds_them_in_a_line():
    assert clean_text("line one\r\n\tline two") == "line one\r\n\tline two"
    assert clean_line("  Crumbs\r\n\tand  co ") == "Crumbs and co"


@pytest.mark.parametrize("text", ["evil\u202etxt.exe", "a\u2066b\u2069", "\u202ax"])
def test_it_refuses_text_direction_controls_in_a_line_only(text):
    with pytest.raises(InvalidText):
        clean_line(text)
    assert clean_text(text) == text


def test_it_publishes_the_patterns_its_rules_check():
    # The OpenAPI schema carries these patterns: a schema-valid text must be accepted.
    for code in [*range(0x3000), 0xFEFF, 0x10FFFF]:
        char = f"a{chr(code)}b"
        for pattern, rule in ((TEXT_PATTERN, clean_text), (LINE_PATTERN, clean_line)):
            try:
                rule(char)
                accepted = True
            except InvalidText:
                accepted = False
            assert accepted == bool(re.fullmatch(pattern, char)), (hex(code), pattern)


# --- the JSON API ----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": NUL}, "prompt"),
        ({"prompt": "\ud800"}, "prompt"),
        ({"prompt": "a bakery", "name": NUL}, "name"),
        ({"prompt": "a bakery", "name": "evil\u202etxt"}, "name"),
        ({"prompt": "a bakery", "model": NUL}, "model"),
    ],
)
def test_it_refuses_control_characters_when_bob_creates_a_project(bob_api, body, field):
    response = post_json(bob_api, "/api/projects", body)
    assert response.status_code == 422
    assert field in [error["field"] for error in response.json()["errors"]]
    assert not Project.objects.exists() and not Job.objects.exists()


@pytest.mark.django_db
def test_it_refuses_nul_in_bobs_prompt(bob_api, bob):
    project = make_project(bob, status=Project.Status.STOPPED)
    response = post_json(bob_api, f"/api/projects/{project.id}/prompt", {"text": NUL})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "text"
    assert project_jobs(project) == []


@pytest.mark.django_db
def test_it_answers_a_project_id_with_nul_as_missing(bob_api, bob_client):
    assert bob_api.get("/api/projects/%00").status_code == 404
    assert bob_api.get("/api/projects/0123456789abcde%00").status_code == 404
    assert bob_api.delete("/api/projects/%00").status_code == 404
    assert bob_client.get("/projects/%00/").status_code == 404


@pytest.mark.django_db
def test_it_folds_a_name_the_same_way_through_the_api_and_the_rename_form(bob_api, bob_client, bob):
    response = post_json(bob_api, "/api/projects", {"prompt": "a bakery", "name": " A\r\nB\tC "})
    assert response.status_code == 202
    project = Project.objects.get(pk=response.json()["id"])
    assert project.name == "A B C"
    bob_client.post(f"/projects/{project.id}/rename", {"name": " D\r\nE\tF "})
    project.refresh_from_db()
    assert project.name == "D E F"


@pytest.mark.django_db
def test_it_names_a_project_from_its_prompt_without_direction_controls(bob_api):
    response = post_json(bob_api, "/api/projects", {"prompt": "a \u202ebakery\u202c\nsite"})
    project = Project.objects.get(pk=response.json()["id"])
    assert project.name == "A bakery site"
    assert project.prompt == "a \u202ebakery\u202c\nsite"  # free text keeps them


# --- pages ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("name", [NUL, "evil\u202etxt", "\x1b[2J"])
def test_it_refuses_control_characters_when_bob_renames_a_project(bob_client, bob, name):
    project = make_project(bob)
    response = bob_client.post(f"/projects/{project.id}/rename", {"name": name})
    assert response.status_code == 302
    assert any("control characters" in str(m) for m in get_messages(response.wsgi_request))
    project.refresh_from_db()
    assert project.name == "Site"


@pytest.mark.django_db
def test_it_refuses_nul_in_the_dashboard_create_form(bob_client, bob_provider):
    response = bob_client.post("/projects/new", {"prompt": "a\x01b", "model": MODEL})
    assert response.status_code == 400
    assert "control characters" in response.content.decode()
    assert not Project.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("param", ["q", "type"])
def test_it_answers_queue_filters_with_nul_with_400(alice_client, bob_client, param):
    for client in (alice_client, bob_client):
        response = client.get("/queue/", {param: NUL})
        assert response.status_code == 400
        assert "control characters" in response.content.decode()
        assert client.get("/queue/", {param: NUL, "partial": "1"}).status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize("q", ["²", "9" * 40])
def test_it_reads_a_queue_search_that_is_no_job_id_as_text(alice_client, q):
    assert alice_client.get("/queue/", {"q": q}).status_code == 200


@pytest.mark.django_db
def test_it_refuses_nul_in_bobs_token_name_and_provider_label(bob_client, bob):
    response = bob_client.post("/settings/tokens/add", {"name": NUL})
    assert response.status_code == 400
    assert not ApiToken.objects.exists()
    response = bob_client.post(
        "/settings/providers/add",
        {"kind": "openrouter", "api_key": "sk-or-v1-abc\x00def", "label": NUL},
    )
    assert response.status_code == 400
    assert not ProviderCredential.objects.exists()


@pytest.mark.django_db
def test_it_answers_a_sign_in_with_nul_without_an_error(client, bob):
    response = client.post("/login", {"username": "bob\x00", "password": "x\x00"})
    assert response.status_code in (200, 400)


# --- the chat socket --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
async def test_it_answers_a_chat_prompt_with_nul_with_an_error_and_stays_open(bob):
    # A stopped project: the prompt goes through the queue (services.send_prompt).
    project = await database_sync_to_async(make_project)(bob, status=Project.Status.STOPPED)
    cookie = await database_sync_to_async(session_cookie)(bob)
    communicator = ws_communicator(f"/ws/projects/{project.id}/chat/", cookie)
    connected, _ = await communicator.connect()
    assert connected
    assert json.loads(await communicator.receive_from(timeout=5))["type"] == "chat.history"
    await communicator.send_to(text_data=json.dumps({"type": "prompt", "text": NUL}))
    reply = json.loads(await communicator.receive_from(timeout=5))
    assert reply["type"] == "chat.error"
    assert "control characters" in reply["payload"]["message"]
    await communicator.send_to(text_data=json.dumps({"type": "prompt", "text": "pink"}))
    assert json.loads(await communicator.receive_from(timeout=5))["type"] == "chat.ack"
    await communicator.disconnect()
    jobs = await database_sync_to_async(project_jobs)(project)
    assert [kind for kind, _ in jobs] == ["docker.ensureRunning", "opencode.sendUserPrompt"]
