"""Restore to a message and prompt attachments, through the API, against the real pinned
OpenCode server driven by the scripted model."""

from __future__ import annotations

import base64
import io
import json
import time

import pytest
from django.test import Client
from PIL import Image

from accounts.models import ProviderCredential
from accounts.services import create_api_token
from doce.opencode.client import OpencodeClient
from projects import services
from projects.models import AgentState, Project
from tests.opencode.fixtures import require_opencode, shared_scripted_model

pytestmark = [pytest.mark.opencode, pytest.mark.timeout(120), pytest.mark.django_db]


def _write(name: str, text: str) -> list[list[dict]]:
    return [
        [{"type": "tool", "name": "write", "arguments": {"filePath": name, "content": text}}],
        [{"type": "text", "text": f"Wrote {name}."}],
    ]


@pytest.fixture
def agent():
    return require_opencode()


@pytest.fixture
def project(agent, alice):
    # The scripted model reads images (an OpenAI-compatible endpoint marked so).
    ProviderCredential.objects.create(
        user=alice,
        kind="openai-compatible",
        provider_id="scripted",
        base_url="http://127.0.0.1:9/v1",
        model_names=["scripted"],
        accepts_images=True,
    )
    with OpencodeClient(agent.base_url, agent.password) as client:
        session_id = client.create_session().id
    return Project.objects.create(
        owner=alice,
        name="Restore",
        prompt="p",
        model="scripted/scripted",
        status=Project.Status.RUNNING,
        agent_state=AgentState.READY,  # the agent answers: prompts go straight to it
        agent_port=agent.port,
        agent_password=agent.password,
        agent_session_id=session_id,
    )


@pytest.fixture
def api(alice) -> Client:
    _, token = create_api_token(alice, "tests")
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def _post(api: Client, path: str, body: dict):
    return api.post(path, json.dumps(body), content_type="application/json")


def _prompt_and_wait(api: Client, agent, project: Project, body: dict) -> None:
    response = _post(api, f"/api/projects/{project.id}/prompt", body)
    assert response.status_code == 202, response.content
    with OpencodeClient(agent.base_url, agent.password) as client:
        deadline = time.monotonic() + 60
        while True:
            messages = client.messages(project.agent_session_id)
            last = messages[-1].info if messages else None
            answered = last is not None and last.role == "assistant" and last.time.completed
            if answered and project.agent_session_id not in client.session_statuses():
                return
            assert time.monotonic() < deadline, "the agent did not finish"
            time.sleep(0.2)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def test_it_restores_to_the_first_message_and_undoes_the_restore(api, agent, project):
    model = shared_scripted_model()
    model.scripts["restore-one"] = _write("restore-one.md", "one\n")
    model.scripts["restore-two"] = _write("restore-two.md", "two\n")
    _prompt_and_wait(api, agent, project, {"text": "[script:restore-one] first"})
    _prompt_and_wait(api, agent, project, {"text": "[script:restore-two] second"})
    one, two = agent.project_dir / "restore-one.md", agent.project_dir / "restore-two.md"
    assert one.exists() and two.exists()
    with OpencodeClient(agent.base_url, agent.password) as client:
        users = [
            m.info.id for m in client.messages(project.agent_session_id) if m.info.role == "user"
        ]

    response = _post(api, f"/api/projects/{project.id}/restore", {"message_id": users[0]})
    assert response.status_code == 200, response.content
    assert response.json() == {"undone_from": users[1]}
    assert one.exists() and not two.exists()  # the second prompt's file is gone

    assert api.post(f"/api/projects/{project.id}/unrestore").status_code == 202
    assert two.read_text() == "two\n"  # and back
    # Nothing left to undo; the last message has nothing after it.
    assert api.post(f"/api/projects/{project.id}/unrestore").status_code == 409
    last = _post(api, f"/api/projects/{project.id}/restore", {"message_id": users[1]})
    assert last.status_code == 409


def test_it_refuses_a_restore_while_the_agent_works(api, agent, project):
    _prompt_and_wait(api, agent, project, {"text": "[script:text] first"})
    response = _post(api, f"/api/projects/{project.id}/prompt", {"text": "[script:slow] wait"})
    assert response.status_code == 202, response.content
    with OpencodeClient(agent.base_url, agent.password) as client:
        session_id = project.agent_session_id
        deadline = time.monotonic() + 30
        while session_id not in client.session_statuses():
            assert time.monotonic() < deadline, "the agent never got busy"
            time.sleep(0.1)
        first = next(m.info.id for m in client.messages(session_id) if m.info.role == "user")
        restore = _post(api, f"/api/projects/{project.id}/restore", {"message_id": first})
        undo = api.post(f"/api/projects/{project.id}/unrestore")
        client.abort(session_id)
        while session_id in client.session_statuses():
            assert time.monotonic() < deadline, "the agent did not stop"
            time.sleep(0.1)
    for response in (restore, undo):
        assert response.status_code == 409, response.content
        assert response.json()["detail"] == services.RESTORE_BUSY_MESSAGE
    # Nothing was reverted: the session has no revert point.
    with OpencodeClient(agent.base_url, agent.password) as client:
        assert not client.get_session(session_id).revert


def test_attachments_reach_the_agent_and_bad_ones_send_nothing(api, agent, project):
    model = shared_scripted_model()
    png = base64.b64encode(_png()).decode()
    notes = base64.b64encode(b"Opening hours: 8 to 18\n").decode()
    before = len(model.requests)
    _prompt_and_wait(
        api,
        agent,
        project,
        {
            "text": "[script:text] Use these",
            "attachments": [
                {"name": "logo.png", "content_base64": png},
                {"name": "hours.txt", "content_base64": notes},
            ],
        },
    )
    seen = json.dumps(model.requests[before:])
    assert f"data:image/png;base64,{png}" in seen  # an image part the model can look at
    assert "Opening hours: 8 to 18" in seen or notes in seen

    with OpencodeClient(agent.base_url, agent.password) as client:
        count = len(client.messages(project.agent_session_id))
    requests = len(model.requests)
    broken = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"not really").decode()
    refused = [
        [{"name": "logo.png", "content_base64": broken}],
        [{"name": "a.bin", "content_base64": base64.b64encode(b"\x00\x01\x02").decode()}],
        [{"name": f"{i}.png", "content_base64": png} for i in range(6)],
        [{"name": "x.png", "content_base64": "%%% not base64"}],
    ]
    for attachments in refused:
        body = {"text": "[script:text] Nope", "attachments": attachments}
        response = _post(api, f"/api/projects/{project.id}/prompt", body)
        assert response.status_code == 400, response.content
        assert response.json()["detail"]
    time.sleep(0.5)
    with OpencodeClient(agent.base_url, agent.password) as client:
        assert len(client.messages(project.agent_session_id)) == count  # nothing was sent
    assert len(model.requests) == requests
