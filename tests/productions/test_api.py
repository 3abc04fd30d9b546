"""The production API: deploy, production state, releases, activate, stop, domains; 404 for
another user's project, release or domain; the OpenAPI schema lists the routes."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts.services import create_api_token
from jobqueue.models import Job
from productions import services
from productions.models import Domain, Production, Release
from projects.models import Project

pytestmark = pytest.mark.django_db


def _api(user) -> Client:
    _, token = create_api_token(user, "tests")
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def post(client: Client, url: str, body=None):
    return client.post(url, json.dumps(body or {}), content_type="application/json")


@pytest.fixture
def project(alice, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    return Project.objects.create(owner=alice, name="Bakery", prompt="a bakery")


def production_jobs(project) -> list[str]:
    return list(
        Job.objects.filter(serial_key=f"production:{project.id}")
        .order_by("id")
        .values_list("type", flat=True)
    )


def test_a_deploy_is_queued_once_and_answers_202(alice, project):
    api = _api(alice)
    response = post(api, f"/api/projects/{project.id}/deployments")
    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    assert production_jobs(project) == [services.BUILD]
    again = post(api, f"/api/projects/{project.id}/deployments")
    assert again.status_code == 409 and "already on its way" in again.json()["detail"]
    assert production_jobs(project) == [services.BUILD]
    state = api.get(f"/api/projects/{project.id}/production").json()
    assert state["status"] == "queued" and state["url"] is None


def test_another_users_project_release_and_domain_are_404(alice, bob, project):
    release = Release.objects.create(
        project=project, release_id="a" * 64, kind="static", commit="c"
    )
    Domain.objects.create(project=project, name="www.bakery.example")
    api = _api(bob)
    base = f"/api/projects/{project.id}"
    assert post(api, f"{base}/deployments").status_code == 404
    assert api.get(f"{base}/production").status_code == 404
    assert api.get(f"{base}/releases").status_code == 404
    assert post(api, f"{base}/releases/{release.release_id}/activate").status_code == 404
    assert api.delete(f"{base}/production").status_code == 404
    assert api.get(f"{base}/domains").status_code == 404
    assert post(api, f"{base}/domains", {"name": "x.example.org"}).status_code == 404
    assert api.delete(f"{base}/domains/www.bakery.example").status_code == 404
    # bob's own project does not reach alice's release or domain either
    own = Project.objects.create(owner=bob, name="Bob's", prompt="x")
    mine = f"/api/projects/{own.id}"
    assert post(_api(bob), f"{mine}/releases/{release.release_id}/activate").status_code == 404
    assert _api(bob).delete(f"{mine}/domains/www.bakery.example").status_code == 404
    assert Domain.objects.filter(name="www.bakery.example").exists()
    assert production_jobs(project) == []


@pytest.mark.parametrize("release_id", ["nothex", "a" * 11, "A" * 64, "a" * 65, "../etc"])
def test_malformed_release_ids_are_404(alice, project, release_id):
    response = post(_api(alice), f"/api/projects/{project.id}/releases/{release_id}/activate")
    assert response.status_code == 404


def test_releases_are_listed_and_activated_by_full_or_short_id(alice, project):
    old = Release.objects.create(project=project, release_id="a" * 64, kind="static", commit="1")
    new = Release.objects.create(project=project, release_id="b" * 64, kind="static", commit="2")
    production = services.production_of(project)
    services.set_production_status(production, Production.Status.QUEUED)
    services.set_production_status(production, Production.Status.LIVE, live_release=new)
    api = _api(alice)
    listed = api.get(f"/api/projects/{project.id}/releases").json()
    assert [(r["short_id"], r["live"]) for r in listed] == [("b" * 12, True), ("a" * 12, False)]
    assert (
        api.get(f"/api/projects/{project.id}/production")
        .json()["url"]
        .startswith(f"http://s-{project.id}.localhost")
    )
    # the live release cannot be activated again
    live = post(api, f"/api/projects/{project.id}/releases/{new.release_id}/activate")
    assert live.status_code == 409
    response = post(api, f"/api/projects/{project.id}/releases/{old.short_id}/activate")
    assert response.status_code == 202
    assert production_jobs(project) == [services.ACTIVATE]
    assert Job.objects.get(type=services.ACTIVATE).payload["release_id"] == old.release_id
    # a pruned release cannot be activated
    Release.objects.filter(pk=old.pk).update(state=Release.State.PRUNED)
    Production.objects.filter(pk=project.pk).update(status=Production.Status.LIVE)
    gone = post(api, f"/api/projects/{project.id}/releases/{old.release_id}/activate")
    assert gone.status_code == 404


def test_stop_is_queued_and_cancels_queued_deploy_steps(alice, project):
    api = _api(alice)
    assert api.delete(f"/api/projects/{project.id}/production").status_code == 409  # never
    post(api, f"/api/projects/{project.id}/deployments")
    response = api.delete(f"/api/projects/{project.id}/production")
    assert response.status_code == 202 and response.json()["status"] == "stopped"
    states = dict(
        Job.objects.filter(serial_key=f"production:{project.id}").values_list("type", "state")
    )
    assert states == {services.BUILD: "cancelled", services.STOP: "queued"}


def test_domains_are_attached_unique_and_detached(alice, bob, project):
    api = _api(alice)
    url = f"/api/projects/{project.id}/domains"
    created = post(api, url, {"name": "WWW.Bakery.example"})
    assert created.status_code == 201 and created.json()["name"] == "www.bakery.example"
    assert [d["name"] for d in api.get(url).json()] == ["www.bakery.example"]
    # unique across the installation, whoever has it
    other = Project.objects.create(owner=bob, name="Bob's", prompt="x")
    taken = post(_api(bob), f"/api/projects/{other.id}/domains", {"name": "www.bakery.example"})
    assert taken.status_code == 409 and "alice" not in taken.content.decode().lower()
    bad = post(api, url, {"name": "not a domain"})
    assert bad.status_code == 400
    empty = post(api, url, {"name": ""})
    assert empty.status_code == 422
    assert api.delete(f"{url}/www.bakery.example").status_code == 204
    assert api.delete(f"{url}/www.bakery.example").status_code == 404
    assert api.get(url).json() == []


def test_the_openapi_schema_lists_the_production_routes(client, alice):
    paths = client.get("/api/openapi.json").json()["paths"]
    operations = {(m.upper(), p) for p, ops in paths.items() for m in ops if "product" in str(ops)}
    assert {
        ("POST", "/api/projects/{project_id}/deployments"),
        ("GET", "/api/projects/{project_id}/production"),
        ("DELETE", "/api/projects/{project_id}/production"),
        ("GET", "/api/projects/{project_id}/releases"),
        ("POST", "/api/projects/{project_id}/releases/{release_id}/activate"),
        ("GET", "/api/projects/{project_id}/domains"),
        ("POST", "/api/projects/{project_id}/domains"),
        ("DELETE", "/api/projects/{project_id}/domains/{name}"),
    } <= operations
