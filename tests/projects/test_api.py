"""The JSON API at /api/: create, list, get, prompt, stop, start, delete; validation, auth."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.utils import timezone

from accounts.services import create_api_token, revoke_api_token
from jobqueue.models import Job, JobState
from projects import services
from projects.models import Project
from tests.projects.conftest import MODEL, project_jobs

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(alice, alice_provider):
    """A client authenticated with a personal API token of Alice's."""
    _, token = create_api_token(alice, "tests")
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def post(client: Client, url: str, body=None, **extra):
    data = body if isinstance(body, str) else json.dumps(body or {})
    return client.post(url, data, content_type="application/json", **extra)


def test_it_creates_a_project_and_queues_its_first_step(api, alice, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    response = post(api, "/api/projects", {"prompt": "A site for my bakery", "model": MODEL})
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"id", "status"} and body["status"] == "created"
    project = Project.objects.get(pk=body["id"])
    assert project.owner == alice and project.model == MODEL
    assert project.name == "A site for my bakery" and project.prompt == "A site for my bakery"
    job = Job.objects.get(serial_key=f"project:{project.id}")
    assert (job.type, job.state, job.dedupe_key) == (
        "project.create",
        JobState.QUEUED,
        f"project.create:{project.id}",
    )
    assert job.payload == {"project_id": project.id}


def test_it_uses_the_default_model_and_a_given_name(api):
    response = post(api, "/api/projects", {"prompt": "a bakery", "name": "Crumbs"})
    project = Project.objects.get(pk=response.json()["id"])
    assert (project.name, project.model) == ("Crumbs", MODEL)


def test_it_lists_only_the_callers_projects_newest_first(api, alice, bob):
    older = Project.objects.create(owner=alice, name="Older", prompt="p")
    newer = Project.objects.create(owner=alice, name="Newer", prompt="p")
    Project.objects.create(owner=bob, name="Bob's", prompt="p")
    response = api.get("/api/projects")
    assert response.status_code == 200
    assert [p["id"] for p in response.json()] == [newer.id, older.id]


def test_it_gets_a_project_with_its_preview_url_and_flags(api, alice, settings):
    project = Project.objects.create(
        owner=alice,
        name="Site",
        prompt="p",
        model=MODEL,
        status=Project.Status.RUNNING,
        preview_port=41000,
        agent_port=41001,
        prompt_sent=True,
        agent_state="starting",
    )
    body = api.get(f"/api/projects/{project.id}").json()
    assert body["id"] == project.id and body["status"] == "running"
    # Viewable while its agent is still starting: both are shown.
    assert body["agent"] == {"state": "starting"}
    # The preview's own origin behind the edge, entered with a fresh single-use token.
    origin = f"http://p-{project.id}.localhost:{settings.DOCE_PORT}"
    assert body["preview_url"].startswith(f"{origin}/.doce/enter?token=")
    assert (body["prompt_sent"], body["prompt_completed"]) == (True, False)
    assert body["model"] == MODEL and body["status_reason"] == ""
    assert "agent_password" not in body and "agent_port" not in body

    Project.objects.filter(pk=project.pk).update(preview_port=None, agent_port=None)
    assert api.get(f"/api/projects/{project.id}").json()["preview_url"] is None


def test_it_queues_a_prompt_for_a_stopped_project_after_starting_it(api, alice):
    project = Project.objects.create(
        owner=alice, name="Site", prompt="p", model=MODEL, status=Project.Status.STOPPED
    )
    response = post(api, f"/api/projects/{project.id}/prompt", {"text": "Make it pink"})
    assert response.status_code == 202
    assert response.json() == {"id": project.id, "status": "starting", "queued": True}
    assert project_jobs(project.id) == [
        ("docker.ensureRunning", "queued"),
        ("opencode.sendUserPrompt", "queued"),
    ]
    prompt_job = Job.objects.get(type="opencode.sendUserPrompt")
    assert prompt_job.payload["text"] == "Make it pink" and prompt_job.payload["model"] == MODEL


def test_it_refuses_a_prompt_with_a_model_the_user_has_no_provider_for(api, alice):
    project = Project.objects.create(owner=alice, name="Site", prompt="p", model=MODEL)
    response = post(
        api, f"/api/projects/{project.id}/prompt", {"text": "hi", "model": "openai/gpt-9"}
    )
    assert response.status_code == 400
    assert "openai/gpt-9" in response.json()["detail"]
    assert project_jobs(project.id) == []


def test_it_refuses_a_restore_while_a_prompt_is_queued_with_a_clear_409(api, alice):
    # The agent is not even asked: a queued prompt will make it busy.
    project = Project.objects.create(
        owner=alice,
        name="Site",
        prompt="p",
        status=Project.Status.RUNNING,
        agent_state="ready",
        agent_port=45998,  # nothing listens there
        agent_session_id="ses_1",
        prompt_state="queued",
    )
    restore = post(api, f"/api/projects/{project.id}/restore", {"message_id": "msg_1"})
    undo = post(api, f"/api/projects/{project.id}/unrestore")
    for response in (restore, undo):
        assert response.status_code == 409, response.content
        assert response.json()["detail"] == services.RESTORE_BUSY_MESSAGE


def test_it_stops_starts_and_deletes(api, alice):
    project = Project.objects.create(
        owner=alice, name="Site", prompt="p", model=MODEL, status=Project.Status.RUNNING
    )
    base = f"/api/projects/{project.id}"
    response = post(api, f"{base}/stop")
    assert (response.status_code, response.json()["status"]) == (202, "stopping")
    Project.objects.filter(pk=project.pk).update(status=Project.Status.STOPPED)
    response = post(api, f"{base}/start")
    assert (response.status_code, response.json()["status"]) == (202, "starting")
    response = api.delete(base)
    assert (response.status_code, response.json()["status"]) == (202, "deleting")
    assert [t for t, _ in project_jobs(project.id)] == [
        "docker.stop",
        "docker.ensureRunning",
        "project.delete",
    ]
    # Deleting cancelled the start that had not run yet.
    assert dict(project_jobs(project.id))["docker.ensureRunning"] == "cancelled"
    response = post(api, f"{base}/start")
    assert response.status_code == 409
    assert "deleted" in response.json()["detail"]


def test_it_retries_a_project_in_error_from_its_failed_step(api, alice, bob):
    project = Project.objects.create(
        owner=alice, name="Site", prompt="p", model=MODEL, status=Project.Status.RUNNING
    )
    base = f"/api/projects/{project.id}"
    response = post(api, f"{base}/retry")
    assert response.status_code == 409
    assert "Only a project in error" in response.json()["detail"]
    failed = services.enqueue_step(project, "docker.composeUp")
    Job.objects.filter(pk=failed.pk).update(state=JobState.FAILED, finished_at=timezone.now())
    Project.objects.filter(pk=project.pk).update(
        status=Project.Status.ERROR, status_reason="Docker Engine unreachable"
    )
    response = post(api, f"{base}/retry")
    assert (response.status_code, response.json()["status"]) == (202, "starting")
    assert project_jobs(project.id) == [
        ("docker.composeUp", "failed"),
        ("docker.composeUp", "queued"),
    ]
    _, bobs_token = create_api_token(bob, "tests")
    bobs = Client(HTTP_AUTHORIZATION=f"Bearer {bobs_token}")
    assert post(bobs, f"{base}/retry").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "prompt"),
        ({"model": MODEL}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x" * 20_001}, "prompt"),
        ({"prompt": 42}, "prompt"),
        ({"prompt": ["a"]}, "prompt"),
        ({"prompt": "ok", "model": 7}, "model"),
        ({"prompt": "ok", "name": "n" * 121}, "name"),
        ("{not json", "body"),
        ("", "body"),
        ("[]", "prompt"),
        ("null", "prompt"),
        ('{"prompt": null}', "prompt"),
    ],
)
def test_it_answers_invalid_input_with_422_naming_the_field(api, body, field):
    response = post(api, "/api/projects", body)
    assert response.status_code == 422
    answer = response.json()
    assert field in [error["field"] for error in answer["errors"]]
    assert field in answer["detail"]
    assert not Project.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "text"), ({"text": ""}, "text"), ({"text": 1}, "text"), ("nope", "body")],
)
def test_it_validates_prompt_bodies(api, alice, body, field):
    project = Project.objects.create(owner=alice, name="Site", prompt="p", model=MODEL)
    response = post(api, f"/api/projects/{project.id}/prompt", body)
    assert response.status_code == 422
    assert field in [error["field"] for error in response.json()["errors"]]
    assert project_jobs(project.id) == []


def test_it_refuses_creation_without_a_provider_pointing_at_settings(bob):
    _, token = create_api_token(bob, "tests")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = post(client, "/api/projects", {"prompt": "a bakery"})
    assert response.status_code == 412
    assert "Settings" in response.json()["detail"]
    assert not Project.objects.exists() and not Job.objects.exists()


def test_it_refuses_an_unknown_model(api):
    response = post(api, "/api/projects", {"prompt": "a bakery", "model": "openai/gpt-9"})
    assert response.status_code == 400
    assert "openai/gpt-9" in response.json()["detail"]
    assert not Project.objects.exists() and not Job.objects.exists()


def test_it_authenticates_with_tokens_and_sessions_only(alice, alice_provider, client):
    token_row, token = create_api_token(alice, "tests")
    bearer = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert bearer.get("/api/projects").status_code == 200
    token_row.refresh_from_db()
    assert token_row.last_used_at is not None

    assert client.get("/api/projects").status_code == 401  # anonymous
    assert post(client, "/api/projects", {"prompt": "a"}).status_code == 401
    wrong = Client(HTTP_AUTHORIZATION="Bearer doce_not-a-real-token")
    assert wrong.get("/api/projects").status_code == 401
    assert Client(HTTP_AUTHORIZATION=f"Basic {token}").get("/api/projects").status_code == 401

    revoke_api_token(alice, token_row.pk)
    assert bearer.get("/api/projects").status_code == 401
    assert post(bearer, "/api/projects", {"prompt": "a"}).status_code == 401
    assert not Project.objects.exists()

    client.force_login(alice)
    assert client.get("/api/projects").status_code == 200


def test_it_refuses_the_token_of_a_deactivated_user(alice, alice_provider):
    _, token = create_api_token(alice, "tests")
    alice.is_active = False
    alice.save()
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/projects").status_code == 401
    assert post(client, "/api/projects", {"prompt": "a"}).status_code == 401
    assert not Project.objects.exists()


def test_it_answers_unsafe_requests_with_a_bad_token_with_401_not_a_csrf_error(
    alice, alice_provider
):
    project = Project.objects.create(owner=alice, name="Site", prompt="p", model=MODEL)
    token_row, token = create_api_token(alice, "tests")
    revoke_api_token(alice, token_row.pk)
    for header in ("Bearer doce_not-a-real-token", f"Bearer {token}", "Bearer "):
        client = Client(HTTP_AUTHORIZATION=header, enforce_csrf_checks=True)
        for response in (
            post(client, "/api/projects", {"prompt": "a"}),
            post(client, f"/api/projects/{project.id}/stop"),
            client.delete(f"/api/projects/{project.id}"),
        ):
            assert response.status_code == 401, header
            assert response.json() == {"detail": "Unauthorized"}
    assert project_jobs(project) == []


def test_it_still_wants_the_csrf_token_from_a_signed_in_browser(alice, alice_provider):
    browser = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION="Bearer doce_wrong")
    browser.force_login(alice)
    assert post(browser, "/api/projects", {"prompt": "a"}).status_code == 403
    assert not Project.objects.exists()


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
def test_it_reads_the_bearer_scheme_in_any_case(alice, alice_provider, scheme):
    _, token = create_api_token(alice, "tests")
    client = Client(HTTP_AUTHORIZATION=f"{scheme} {token}", enforce_csrf_checks=True)
    assert client.get("/api/projects").status_code == 200
    assert post(client, "/api/projects", {"prompt": "a bakery"}).status_code == 202


def test_it_logs_the_user_of_a_token_request(api, alice, json_logs):
    json_logs.start()
    api.get("/api/projects")
    line = next(line for line in json_logs() if line.get("event") == "request")
    assert line["user_id"] == alice.pk and line["path"] == "/api/projects"


def test_it_publishes_an_openapi_schema_of_its_routes(client, alice):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    operations = {(m.upper(), path) for path, ops in paths.items() for m in ops}
    assert operations == {
        ("POST", "/api/projects"),
        ("GET", "/api/projects"),
        ("GET", "/api/projects/{project_id}"),
        ("DELETE", "/api/projects/{project_id}"),
        ("POST", "/api/projects/{project_id}/prompt"),
        ("POST", "/api/projects/{project_id}/restore"),
        ("POST", "/api/projects/{project_id}/unrestore"),
        ("POST", "/api/projects/{project_id}/stop"),
        ("POST", "/api/projects/{project_id}/start"),
        ("GET", "/api/projects/{project_id}/messages"),
        ("POST", "/api/projects/{project_id}/retry"),
        # productions (tests/productions/test_api.py)
        ("POST", "/api/projects/{project_id}/deployments"),
        ("GET", "/api/projects/{project_id}/production"),
        ("DELETE", "/api/projects/{project_id}/production"),
        ("GET", "/api/projects/{project_id}/releases"),
        ("POST", "/api/projects/{project_id}/releases/{release_id}/activate"),
        ("GET", "/api/projects/{project_id}/domains"),
        ("POST", "/api/projects/{project_id}/domains"),
        ("DELETE", "/api/projects/{project_id}/domains/{name}"),
    }
    create = paths["/api/projects"]["post"]
    assert "202" in create["responses"] and "412" in create["responses"]


def test_it_documents_every_error_status_an_operation_can_answer(client, alice):
    paths = client.get("/api/openapi.json").json()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            documented = set(operation["responses"])
            expected = {"401"}  # every route needs a token or a session
            if method in ("post", "delete"):
                expected.add("403")  # a signed-in session without its CSRF token
            if "{project_id}" in path:
                expected.add("404")
            if "requestBody" in operation:
                expected.add("422")
            assert expected <= documented, (method, path, documented)


@pytest.mark.django_db
def test_it_serves_the_api_docs_without_a_cdn(client, alice):
    client.force_login(alice)
    response = client.get("/api/docs")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui-bundle" in page
    assert not re.search(r'(src|href)="https?://', page)  # doce must work with no internet
