"""CSRF is enforced on every form: a signed-in owner's POST without the token is a 403 and
changes nothing, on every route doce serves (found through the URL resolver, so new forms
are covered without editing this file); the same POST with the token gets through. The
API wants the token with session auth, not with a personal API token."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.services import create_api_token
from jobqueue.models import Job, JobState
from projects import services
from tests.projects.conftest import MODEL, snapshot

pytestmark = pytest.mark.django_db


def _patterns(patterns=None, prefix: str = ""):
    """Every URL pattern as one regex-free template string: `projects/{project_id}/...`."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        text = str(pattern.pattern)
        # Regex patterns (`^(?P<app_label>a|b)/$`): name their groups, drop the anchors.
        text = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", text).lstrip("^").rstrip("$")
        # Route patterns (`<int:job_id>`, `<project_id>`): the same placeholders.
        text = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", text)
        if isinstance(pattern, URLResolver):
            yield from _patterns(pattern.url_patterns, prefix + text)
        elif isinstance(pattern, URLPattern):
            yield prefix + text


ROUTES = sorted(set(_patterns()))


@pytest.fixture
def owner_world(alice, alice_project, alice_provider):
    failed = services.enqueue_step(alice_project, "project.create")
    Job.objects.filter(pk=failed.pk).update(state=JobState.FAILED)
    token, _ = create_api_token(alice, "laptop")
    return {
        "project_id": alice_project.id,
        "job_id": failed.pk,
        "credential_id": alice_provider.pk,
        "token_id": token.pk,
        "name": "stop",
        "object_id": alice_project.id,
        "app_label": "projects",
        "content_type_id": 1,
        "id": alice.pk,
        "url": "",
        "release_id": "a" * 64,
    }


# A body that would be accepted with a token, so the 403 can only be the missing token.
FORM_DATA = {
    "prompt": "a bakery",
    "model": MODEL,
    "name": "renamed",
    "kind": "openai",
    "api_key": "sk-test-1234567890",
    "default_model": MODEL,
    "old_password": "alice-pass-1",
    "new_password1": "a-new-long-pass-42",
    "new_password2": "a-new-long-pass-42",
    "username": "mallory",
    "password1": "a-new-long-pass-42",
    "password2": "a-new-long-pass-42",
    "path": "public/logo.png",
}


@pytest.fixture
def csrf_client(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    return client


def _csrf_token(client: Client) -> str:
    client.get("/settings/")
    return client.cookies["csrftoken"].value


@pytest.mark.parametrize("route", ROUTES)
def test_it_refuses_a_post_without_the_csrf_token(csrf_client, owner_world, route):
    url = "/" + route.format(**owner_world)
    before = snapshot()
    response = csrf_client.post(url, FORM_DATA)
    # 405: an API path without a POST operation (django-ninja answers before any auth).
    refused = response.status_code
    assert refused in (403, 405), url
    if refused == 403:
        assert b"CSRF" in response.content, url
    assert snapshot() == before
    assert csrf_client.get("/settings/").status_code == 200  # still signed in (logout, password)

    token = _csrf_token(csrf_client)
    response = csrf_client.post(url, {**FORM_DATA, "csrfmiddlewaretoken": token})
    if refused == 405:
        assert response.status_code == 405 and route.startswith("api/"), url
    else:
        # Through the CSRF check; a 403 now is a permission (read-only admin pages).
        csrf_failure = response.status_code == 403 and b"CSRF" in response.content
        assert not csrf_failure and response.status_code != 500, url


def test_it_walks_the_forms_of_every_app():
    """The walk above covers the forms the issue names (guards the resolver walk itself)."""
    expected = {
        "setup",
        "login",
        "logout",
        "users/",
        "settings/providers/add",
        "settings/providers/{credential_id}/delete",
        "settings/default-model",
        "settings/password",
        "settings/tokens/add",
        "settings/tokens/{token_id}/revoke",
        "projects/new",
        "projects/{project_id}/actions/{name}",
        "projects/{project_id}/rename",
        "projects/{project_id}/model",
        "projects/{project_id}/jobs/{job_id}/retry",
        "projects/{project_id}/assets/upload",
        "projects/{project_id}/assets/rename",
        "projects/{project_id}/assets/delete",
        "queue/pause",
        "queue/resume",
        "queue/jobs/{job_id}/cancel",
        "queue/jobs/{job_id}/retry",
        "queue/jobs/{job_id}/run-now",
        "queue/jobs/{job_id}/force-cancel",
        "api/projects",
        "api/projects/{project_id}/prompt",
        "api/projects/{project_id}/stop",
        "api/projects/{project_id}/start",
    }
    assert expected <= set(ROUTES)


@pytest.mark.parametrize("action", ["stop", "start", "restart-preview", "delete"])
def test_it_refuses_each_project_action_without_the_token(csrf_client, owner_world, action):
    before = snapshot()
    response = csrf_client.post(f"/projects/{owner_world['project_id']}/actions/{action}")
    assert response.status_code == 403
    assert snapshot() == before


def test_it_refuses_an_upload_without_the_token(csrf_client, alice_project):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = csrf_client.post(
        f"/projects/{alice_project.id}/assets/upload",
        {"file": SimpleUploadedFile("new.png", b"\x89PNG")},
    )
    assert response.status_code == 403
    assert not (alice_project.site_dir / "public" / "new.png").exists()


def test_it_protects_first_run_setup_and_sign_in(db, django_user_model):
    client = Client(enforce_csrf_checks=True)
    form = {"username": "root", "password1": "a-long-pass-42x", "password2": "a-long-pass-42x"}
    assert client.post("/setup", form).status_code == 403
    assert not django_user_model.objects.exists()
    client.get("/setup")
    token = client.cookies["csrftoken"].value
    assert client.post("/setup", {**form, "csrfmiddlewaretoken": token}).status_code == 302
    assert django_user_model.objects.filter(username="root").exists()

    other = Client(enforce_csrf_checks=True)
    credentials = {"username": "root", "password": "a-long-pass-42x"}
    assert other.post("/login", credentials).status_code == 403
    assert other.get("/settings/").status_code == 302  # not signed in


# --- The API ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/projects", {"prompt": "a bakery"}),
        ("POST", "/api/projects/{project_id}/prompt", {"text": "pink"}),
        ("POST", "/api/projects/{project_id}/stop", None),
        ("POST", "/api/projects/{project_id}/start", None),
        ("DELETE", "/api/projects/{project_id}", None),
    ],
)
def test_it_wants_the_csrf_token_with_session_auth_only(
    csrf_client, alice, owner_world, method, path, body
):
    url = path.format(**owner_world)
    data = json.dumps(body) if body is not None else ""
    before = snapshot()
    response = csrf_client.generic(method, url, data, "application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert snapshot() == before

    token = _csrf_token(csrf_client)
    response = csrf_client.generic(method, url, data, "application/json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 202

    _, api_token = create_api_token(alice, "script")
    bearer = Client(enforce_csrf_checks=True)
    response = bearer.generic(
        method, url, data, "application/json", HTTP_AUTHORIZATION=f"Bearer {api_token}"
    )
    assert response.status_code == 202
