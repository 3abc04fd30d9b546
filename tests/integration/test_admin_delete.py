"""Deleting projects in Django admin goes through the delete service: on the real Docker
Engine, the stack (containers, network, volumes) and the files go, and the ports are free."""

from __future__ import annotations

import pytest

from doce.docker.stacks import list_stacks
from jobqueue.worker import Worker
from projects.models import Project
from projects.runtime import stack_up

pytest_plugins = ["tests.fixtures_runtime"]
pytestmark = pytest.mark.docker


def _run_queued_jobs() -> None:
    worker = Worker(worker_id="test-worker", concurrency=1, housekeeping=False, lease_seconds=60)
    while worker.run_one():
        pass


def _started(make_runtime_project, owner) -> Project:
    project = make_runtime_project(owner, with_dependencies=False)
    stack_up(project)
    assert list_stacks()[project.id].exists
    return project


def _assert_gone(project: Project) -> None:
    assert not Project.objects.filter(pk=project.pk).exists()
    assert project.id not in list_stacks()
    assert not project.root_dir.exists()
    ports = (project.preview_port, project.agent_port)
    assert not Project.objects.filter(preview_port=ports[0]).exists()
    assert not Project.objects.filter(agent_port=ports[1]).exists()


def test_it_deletes_a_project_from_admin_with_its_stack_and_files(
    make_runtime_project, alice, bob, client
):
    project = _started(make_runtime_project, bob)
    client.force_login(alice)  # alice is the administrator

    response = client.post(f"/admin/projects/project/{project.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.status == Project.Status.DELETING

    _run_queued_jobs()
    _assert_gone(project)


def test_it_bulk_deletes_projects_from_admin_with_their_stacks_and_files(
    make_runtime_project, alice, bob, charlie, client
):
    projects = [_started(make_runtime_project, bob), _started(make_runtime_project, charlie)]
    client.force_login(alice)

    response = client.post(
        "/admin/projects/project/",
        {
            "action": "delete_selected",
            "_selected_action": [project.pk for project in projects],
            "post": "yes",
        },
    )
    assert response.status_code == 302
    assert set(Project.objects.values_list("status", flat=True)) == {Project.Status.DELETING}

    _run_queued_jobs()
    for project in projects:
        _assert_gone(project)
