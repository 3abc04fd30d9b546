"""One prompt path: the chat socket and the API both go through `services.send_prompt`, so
they accept and refuse the same prompts (length limit, model rules) with the same message."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from accounts.services import create_api_token
from jobqueue.models import Job
from projects.models import Project
from projects.services import PROMPT_MAX
from tests.projects.conftest import MODEL
from tests.ws import session_cookie, ws_communicator

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

CASES = [
    ("a short prompt", {"text": "Make it pink"}),
    ("the longest prompt", {"text": "a" * PROMPT_MAX}),
    ("one character too long", {"text": "a" * (PROMPT_MAX + 1)}),
    ("only whitespace", {"text": " \n\t "}),
    ("one of her models", {"text": "Make it pink", "model": MODEL}),
    ("a model she has no provider for", {"text": "Make it pink", "model": "openai/gpt-9"}),
    ("not a model name", {"text": "Make it pink", "model": "no-slash"}),
]


def _api_outcome(api: Client, project: Project, body: dict) -> tuple[bool, str]:
    response = api.post(
        f"/api/projects/{project.id}/prompt", json.dumps(body), content_type="application/json"
    )
    return response.status_code == 202, "" if response.status_code == 202 else response.json()[
        "detail"
    ]


async def _chat_outcome(communicator, body: dict) -> tuple[bool, str]:
    await communicator.send_to(text_data=json.dumps({"type": "prompt", **body}))
    while True:
        event = json.loads(await communicator.receive_from(timeout=10))
        if event["type"] == "chat.ack":
            return True, ""
        if event["type"] == "chat.error":
            return False, event["payload"]["message"]


@pytest.mark.parametrize(("label", "body"), CASES, ids=[label for label, _ in CASES])
async def test_the_chat_and_the_api_apply_the_same_prompt_rules(alice, alice_provider, label, body):
    # Stopped projects: every accepted prompt is queued (start, then send), nothing else runs.
    by_api, by_chat = [
        await sync_to_async(Project.objects.create)(
            owner=alice, name=name, prompt="p", model=MODEL, status=Project.Status.STOPPED
        )
        for name in ("api", "chat")
    ]
    _, token = await sync_to_async(create_api_token)(alice, "tests")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    api_accepted, api_message = await sync_to_async(_api_outcome)(api, by_api, body)

    cookie = await sync_to_async(session_cookie)(alice)
    communicator = ws_communicator(f"/ws/projects/{by_chat.id}/chat/", cookie)
    connected, _ = await communicator.connect()
    assert connected
    chat_accepted, chat_message = await _chat_outcome(communicator, body)
    await communicator.disconnect()

    assert api_accepted == chat_accepted, label
    if not api_accepted and not api_message.startswith("Invalid input"):
        # Refused by the service (not by the API's schema): its own words on both paths.
        assert api_message == chat_message
    queued = {
        project.id: await Job.objects.filter(
            serial_key=f"project:{project.id}", type="opencode.sendUserPrompt"
        ).acount()
        for project in (by_api, by_chat)
    }
    assert queued == {by_api.id: int(api_accepted), by_chat.id: int(chat_accepted)}
