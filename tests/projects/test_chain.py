"""The declared job chain (`projects.chain`) drives handlers, the setup checklist, stop and
retry: one place names each step, its label, what follows it and what retrying it means."""

from __future__ import annotations

import pytest
from django.utils.html import escape

from jobqueue.models import Job, JobState
from jobqueue.registry import registered_types
from projects import chain, services
from projects.models import Project
from tests.projects.conftest import make_project, project_jobs

pytestmark = pytest.mark.django_db


def _failed(project, type: str, payload: dict | None = None) -> Job:
    job = services.enqueue_step(project, type, payload)
    Job.objects.filter(pk=job.pk).update(state=JobState.FAILED)
    return job


def test_it_declares_the_create_chain_in_the_seeds_order():
    assert chain.CREATE_CHAIN == (
        "project.create",
        "docker.composeUp",
        "docker.waitReady",
        "opencode.waitReady",
        "opencode.sessionCreate",
        "opencode.sendUserPrompt",
        "opencode.awaitIdle",
    )
    # A create that claimed a warm stack (projects.pool) skips the files and the `up`.
    assert chain.WARM_CREATE_CHAIN == (
        "project.adopt",
        "opencode.waitReady",
        "opencode.sessionCreate",
        "opencode.sendUserPrompt",
        "opencode.awaitIdle",
    )
    assert chain.STOP_CANCELS == (
        "project.adopt",
        "docker.composeUp",
        "docker.ensureRunning",
        "docker.waitReady",
        "opencode.waitReady",
    )


def test_it_has_a_handler_for_every_declared_step_and_declares_every_project_handler():
    project_types = {
        t for t in registered_types() if t.split(".")[0] in {"project", "docker", "opencode"}
    }
    assert project_types == set(chain.STEPS)
    for step in chain.STEPS.values():
        assert step.label
        assert step.then is None or step.then in chain.STEPS


def test_it_shows_the_declared_labels_in_the_workspace_checklist(
    alice, alice_client, alice_provider
):
    project = services.create_project(alice, prompt="A bakery")
    body = alice_client.get(f"/projects/{project.id}/").content.decode()
    positions = [body.index(escape(chain.STEPS[t].label)) for t in chain.CREATE_CHAIN]
    assert positions == sorted(positions)
    # The browser learns which step ends the setup from the page, not from a JS copy.
    assert f'data-step="{chain.CREATE_CHAIN[-1]}" data-step-last' in body
    assert body.count("data-step-last") == 1


@pytest.mark.parametrize(
    ("type", "before", "after"),
    [
        ("docker.composeUp", Project.Status.ERROR, Project.Status.STARTING),
        ("project.create", Project.Status.ERROR, Project.Status.STARTING),
        ("docker.restartPreview", Project.Status.RUNNING, Project.Status.STARTING),
        ("docker.stop", Project.Status.STOPPING, Project.Status.STOPPING),
        ("project.delete", Project.Status.DELETING, Project.Status.DELETING),
        ("opencode.sessionCreate", Project.Status.ERROR, Project.Status.ERROR),
    ],
)
def test_it_retries_a_step_as_its_declaration_says(alice, type, before, after):
    project = make_project(alice, before)
    job = _failed(project, type)
    services.retry_step(project, job.pk)
    project.refresh_from_db()
    assert project.status == after
    assert project_jobs(project) == [(type, "failed"), (type, "queued")]


def test_it_refuses_to_retry_a_start_step_of_a_project_being_deleted(alice):
    project = make_project(alice, Project.Status.DELETING)
    job = _failed(project, "docker.composeUp")
    with pytest.raises(
        services.ProjectActionError, match="while the project is deleting"
    ) as refused:
        services.retry_step(project, job.pk)
    assert refused.value.status == 409
    project.refresh_from_db()
    assert project.status == Project.Status.DELETING
    assert project_jobs(project) == [("docker.composeUp", "failed")]
