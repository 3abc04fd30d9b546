"""A prompt's own state (`Project.prompt_state`): queued → running → completed or failed with
a reason, written by the services and the job handlers, read through the API."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts.services import create_api_token
from doce.docker.failures import FailureKind, StackError, failure
from doce.opencode.completion import CompletionCheck
from doce.opencode.errors import OpencodeError, make_diagnostic
from jobqueue.models import Job, JobState
from projects import jobs, services
from projects.models import Project, PromptState
from tests.projects.conftest import make_project
from tests.projects.test_jobs import make_due, run_due

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(30)]


@pytest.fixture(autouse=True)
def _data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path


@pytest.fixture
def api(alice, alice_provider):
    _, token = create_api_token(alice, "tests")
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def prompt_of(api, project) -> dict:
    return api.get(f"/api/projects/{project.id}").json()["prompt"]


def test_it_follows_the_first_prompt_from_queued_to_completed(api, alice, worker, fake_runtime):
    project = services.create_project(alice, prompt="a bakery")
    assert prompt_of(api, project) == {"state": "queued", "failure": ""}
    fake_runtime.completion = "pending"
    run_due(worker)
    assert prompt_of(api, project) == {"state": "running", "failure": ""}
    fake_runtime.completion = "done"
    make_due()
    run_due(worker)
    assert prompt_of(api, project) == {"state": "completed", "failure": ""}


def test_a_new_prompt_is_queued_not_the_previous_ones_completed(api, alice, worker, fake_runtime):
    project = make_project(
        alice,
        Project.Status.STOPPED,
        prompt_sent=True,
        prompt_completed=True,
        prompt_state=PromptState.COMPLETED,
    )
    response = api.post(
        f"/api/projects/{project.id}/prompt",
        json.dumps({"text": "Make it pink"}),
        content_type="application/json",
    )
    assert response.status_code == 202
    assert prompt_of(api, project) == {"state": "queued", "failure": ""}


@pytest.mark.parametrize(
    ("check", "reason"),
    [
        (CompletionCheck("failed", True, reason="aborted"), "stopped before it finished"),
        (CompletionCheck("failed", True, reason="no_answer"), "went idle without answering"),
    ],
)
def test_a_failed_turn_is_failed_with_its_reason(
    api, alice, worker, fake_runtime, monkeypatch, check, reason
):
    monkeypatch.setattr(jobs, "check_completion", lambda *a, **k: check)
    project = services.create_project(alice, prompt="a bakery")
    run_due(worker)
    prompt = prompt_of(api, project)
    assert prompt["state"] == "failed" and reason in prompt["failure"]


def test_a_lost_agent_fails_the_prompt_with_why_not_completed(
    api, alice, worker, fake_runtime, monkeypatch
):
    def unreachable(*args, **kwargs):
        raise OpencodeError(
            make_diagnostic("runtime_unreachable", "The agent cannot be reached.", retryable=False)
        )

    monkeypatch.setattr(jobs, "check_completion", unreachable)
    project = services.create_project(alice, prompt="a bakery")
    run_due(worker)
    assert Job.objects.get(type="opencode.awaitIdle").state == JobState.FAILED
    body = api.get(f"/api/projects/{project.id}").json()
    assert body["prompt"] == {"state": "failed", "failure": "The agent cannot be reached."}
    assert body["prompt_completed"] is False


def test_a_project_that_cannot_start_fails_its_queued_prompt(api, alice, worker, fake_runtime):
    fake_runtime.up_error = StackError(failure(FailureKind.DISK_FULL, "The disk is full."))
    project = services.create_project(alice, prompt="a bakery")
    run_due(worker)
    project.refresh_from_db()
    assert project.status == Project.Status.ERROR
    assert prompt_of(api, project) == {"state": "failed", "failure": project.status_reason}


def test_a_prompt_the_running_agent_refuses_is_failed_and_answered_502(api, alice):
    # Running with a session, but nothing listens on the agent's port.
    project = make_project(alice, Project.Status.RUNNING, agent_port=1, agent_session_id="ses_1")
    response = api.post(
        f"/api/projects/{project.id}/prompt",
        json.dumps({"text": "Make it pink"}),
        content_type="application/json",
    )
    assert response.status_code == 502
    prompt = prompt_of(api, project)
    assert prompt["state"] == "failed" and prompt["failure"] == response.json()["detail"]
    assert not Job.objects.exists()
