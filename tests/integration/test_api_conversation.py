"""The API's prompt path and conversation endpoint against the real, pinned OpenCode server
driven by the scripted model: a prompt to a running agent goes straight to it, its state
follows the turn, and `GET /api/projects/{id}/messages` pages through what was said."""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client
from django.utils import timezone

from accounts.services import create_api_token
from doce.opencode.client import OpencodeClient
from jobqueue.models import Job
from jobqueue.worker import Worker
from projects.models import Project
from tests.opencode.fixtures import require_opencode

pytestmark = [pytest.mark.opencode, pytest.mark.timeout(120), pytest.mark.django_db]


@pytest.fixture
def agent():
    return require_opencode()


def _client(user) -> Client:
    _, token = create_api_token(user, "tests")
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def _wait_idle(server, session_id: str) -> None:
    with OpencodeClient(server.base_url, server.password) as client:
        deadline = time.monotonic() + 60
        while session_id in client.session_statuses():
            assert time.monotonic() < deadline, "the agent did not finish"
            time.sleep(0.2)


def test_it_sends_to_the_running_agent_and_pages_through_the_conversation(agent, alice, bob):
    worker = Worker(worker_id="test-worker", concurrency=1, housekeeping=False, lease_seconds=60)
    with OpencodeClient(agent.base_url, agent.password) as client:
        session_id = client.create_session().id
    project = Project.objects.create(
        owner=alice,
        name="Chat",
        prompt="p",
        status=Project.Status.RUNNING,
        agent_state="ready",
        agent_port=agent.port,
        agent_password=agent.password,
        agent_session_id=session_id,
    )
    api = _client(alice)
    response = api.post(
        f"/api/projects/{project.id}/prompt",
        json.dumps({"text": "[script:text] Pages"}),
        content_type="application/json",
    )
    assert response.status_code == 202
    # Sent directly: no prompt job; only the completion tracking was queued.
    assert list(Job.objects.values_list("type", flat=True)) == ["opencode.awaitIdle"]
    assert api.get(f"/api/projects/{project.id}").json()["prompt"]["state"] == "running"
    _wait_idle(agent, session_id)
    deadline = time.monotonic() + 30
    while api.get(f"/api/projects/{project.id}").json()["prompt"]["state"] == "running":
        assert time.monotonic() < deadline
        worker.run_one()  # the completion check, as the worker runs it
        Job.objects.filter(state="queued").update(run_at=timezone.now())
    assert api.get(f"/api/projects/{project.id}").json()["prompt"] == {
        "state": "completed",
        "failure": "",
    }

    everything = api.get(f"/api/projects/{project.id}/messages").json()
    assert [m["role"] for m in everything["messages"]] == ["user", "assistant"]
    assert everything["next_before"] is None
    answer = everything["messages"][1]
    text = "".join(p["text"] or "" for p in answer["parts"] if p["type"] == "text")
    assert "This is a scripted answer about" in text
    assert answer["completed_at"] is not None and answer["error"] is None

    newest = api.get(f"/api/projects/{project.id}/messages?limit=1").json()
    assert [m["id"] for m in newest["messages"]] == [answer["id"]]
    assert newest["next_before"] == answer["id"]
    older = api.get(f"/api/projects/{project.id}/messages?limit=1&before={answer['id']}").json()
    assert [m["role"] for m in older["messages"]] == ["user"]
    assert older["next_before"] is None

    assert api.get(f"/api/projects/{project.id}/messages?before=msg_nothere").status_code == 404
    assert api.get(f"/api/projects/{project.id}/messages?limit=0").status_code == 422
    assert _client(bob).get(f"/api/projects/{project.id}/messages").status_code == 404
    Project.objects.filter(pk=project.pk).update(status=Project.Status.STOPPED)
    assert api.get(f"/api/projects/{project.id}/messages").status_code == 409
