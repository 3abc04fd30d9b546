"""Page query budgets: constant in the number of projects (a query count is deterministic,
so this is a test; timings are measured by the benchmarks)."""

from __future__ import annotations

import pytest

from jobqueue.models import JobState
from projects import chain, services
from projects.models import Project
from tests.projects.conftest import MODEL

pytestmark = pytest.mark.django_db


def _projects(owner, count: int, first_port: int = 42000) -> list[Project]:
    statuses = list(Project.Status)
    return Project.objects.bulk_create(
        Project(
            owner=owner,
            name=f"Site {n}",
            prompt="p",
            model=MODEL,
            status=statuses[n % len(statuses)],
            preview_port=first_port + 2 * n if n % 2 else None,
            agent_port=first_port + 1 + 2 * n if n % 2 else None,
        )
        for n in range(count)
    )


def test_it_renders_the_dashboard_with_200_projects_in_at_most_20_queries(
    alice_client, alice, alice_provider, django_assert_max_num_queries
):
    projects = _projects(alice, 200)
    for project in projects[:20]:
        services.set_status(project, project.status)  # each has live events
    with django_assert_max_num_queries(20):
        response = alice_client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert all(f"/projects/{p.id}/" in body for p in projects)


def test_it_keeps_the_dashboard_query_count_independent_of_the_project_count(
    alice_client, alice, alice_provider, django_assert_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _projects(alice, 5)
    alice_client.get("/")  # the first visit creates the user's preferences row
    with CaptureQueriesContext(connection) as few:
        alice_client.get("/")
    _projects(alice, 100, first_port=43000)
    with django_assert_num_queries(len(few)):
        alice_client.get("/")


def test_it_keeps_the_dashboard_query_count_independent_of_deployed_sites(
    alice_client, alice, alice_provider, django_assert_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from productions.models import Production, Release

    def deploy(projects: list[Project]) -> None:
        for project in projects:
            release = Release.objects.create(
                project=project, release_id=project.id * 4, kind="static", commit="1"
            )
            Production.objects.create(
                project=project, status=Production.Status.LIVE, live_release=release
            )

    deploy(_projects(alice, 3))
    alice_client.get("/")
    with CaptureQueriesContext(connection) as few:
        alice_client.get("/")
    deploy(_projects(alice, 60, first_port=43000))
    with django_assert_num_queries(len(few)):
        body = alice_client.get("/").content.decode()
    assert body.count("Site: Live") == 63


def test_it_keeps_the_api_project_list_query_count_independent_of_the_project_count(
    alice, django_assert_num_queries
):
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.services import create_api_token

    api = Client(HTTP_AUTHORIZATION=f"Bearer {create_api_token(alice, 'list')[1]}")
    _projects(alice, 5)
    api.get("/api/projects")  # the first use records the token's last use
    with CaptureQueriesContext(connection) as few:
        assert len(api.get("/api/projects").json()) == 5
    _projects(alice, 100, first_port=43000)
    with django_assert_num_queries(len(few)):
        assert len(api.get("/api/projects").json()) == 105


def test_it_renders_the_workspace_in_a_bounded_number_of_queries(
    alice_client, alice, alice_provider, alice_project, django_assert_max_num_queries
):
    for step in chain.CREATE_CHAIN:
        job = services.enqueue_step(alice_project, step, _payload(step), dedupe=False)
        job.state = JobState.FAILED
        job.save()
    with django_assert_max_num_queries(10):
        response = alice_client.get(f"/projects/{alice_project.id}/")
    assert response.status_code == 200


def _payload(step: str) -> dict:
    return {
        "docker.waitReady": {"started_at": 0},
        "opencode.waitReady": {"started_at": 0},
        "opencode.sendUserPrompt": {"text": "hi"},
        "opencode.awaitIdle": {"since_ms": 0},
    }.get(step, {})
