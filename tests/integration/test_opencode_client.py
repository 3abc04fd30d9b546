"""The typed client against the real, pinned OpenCode server."""

from __future__ import annotations

import time

import pytest

from doce.opencode.client import AsyncOpencodeClient, OpencodeClient
from doce.opencode.errors import OpencodeError
from doce.versions import OPENCODE_VERSION
from tests.opencode.fixtures import require_opencode
from tests.opencode.harness import free_port

pytestmark = [pytest.mark.opencode, pytest.mark.timeout(90)]


@pytest.fixture(name="opencode_server")
def _opencode_server():
    """The session's shared OpenCode server (see tests.opencode.fixtures)."""
    return require_opencode()


def wait_idle(client: OpencodeClient, session_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    seen_assistant = False
    while time.monotonic() < deadline:
        busy = session_id in client.session_statuses()
        messages = client.messages(session_id)
        seen_assistant = any(m.info.role == "assistant" and m.info.time.completed for m in messages)
        if seen_assistant and not busy:
            return
        time.sleep(0.1)
    raise AssertionError("the session did not finish")


def test_it_answers_health_with_the_pinned_version(opencode_server):
    with OpencodeClient(opencode_server.base_url, opencode_server.password) as client:
        health = client.health()
    assert health.version == OPENCODE_VERSION or health.title


def test_it_manages_sessions(opencode_server):
    with OpencodeClient(opencode_server.base_url, opencode_server.password) as client:
        session = client.create_session(title="Client test")
        assert session.id.startswith("ses")
        assert client.get_session(session.id).title == "Client test"
        assert session.id in [s.id for s in client.list_sessions()]
        assert client.delete_session(session.id) is True
        with pytest.raises(OpencodeError) as caught:
            client.get_session(session.id)
        assert caught.value.not_found


def test_it_sends_a_prompt_and_reads_the_messages_with_a_limit(opencode_server):
    with OpencodeClient(opencode_server.base_url, opencode_server.password) as client:
        session = client.create_session()
        client.prompt_async(session.id, "[script:text] Messages please", model="scripted/scripted")
        wait_idle(client, session.id)
        messages = client.messages(session.id)
        assert [m.info.role for m in messages] == ["user", "assistant"]
        assert messages[1].info.providerID == "scripted"
        texts = [p.text for p in messages[1].parts if p.type == "text"]
        assert texts and texts[0].startswith("Hello! This is a scripted answer")
        assert len(client.messages(session.id, limit=1)) == 1
        assert client.abort(session.id) is True  # idle: nothing to stop, still answered


def test_it_compacts_a_conversation(opencode_server):
    # The chat's "Compact conversation" (consumer `compact` → `summarize`).
    with OpencodeClient(opencode_server.base_url, opencode_server.password) as client:
        session = client.create_session()
        client.prompt_async(
            session.id, "[script:text] Something to compact", model="scripted/scripted"
        )
        wait_idle(client, session.id)
        before = client.messages(session.id)
        assert client.summarize(session.id, "scripted/scripted") is True
        wait_idle(client, session.id)
        after = client.messages(session.id)
        assert len(after) > len(before)  # the summary the model works from from now on
        assert after[-1].info.role == "assistant"


def test_it_reverts_and_unreverts(opencode_server):
    with OpencodeClient(opencode_server.base_url, opencode_server.password) as client:
        session = client.create_session()
        client.prompt_async(session.id, "[script:text] Revert me")
        wait_idle(client, session.id)
        user_message = client.messages(session.id)[0].info.id
        reverted = client.revert(session.id, user_message)
        assert (reverted.revert or {}).get("messageID") == user_message
        assert client.unrevert(session.id).revert is None


def test_it_lists_providers_and_reads_config(opencode_server):
    with OpencodeClient(opencode_server.base_url, opencode_server.password) as client:
        providers = client.providers()
        config = client.config()
    assert "scripted" in [p.id for p in providers.all]
    assert "scripted" in providers.connected
    assert config["model"] == "scripted/scripted"


async def test_it_works_asynchronously_too(opencode_server):
    async with AsyncOpencodeClient(opencode_server.base_url, opencode_server.password) as client:
        session = await client.create_session()
        assert (await client.get_session(session.id)).id == session.id
        assert await client.messages(session.id) == []
        assert await client.pending_permissions() == []


def test_it_classifies_a_wrong_password_as_auth_and_never_echoes_it(opencode_server):
    client = OpencodeClient(opencode_server.base_url, "wrong-password-123")
    with client, pytest.raises(OpencodeError) as caught:
        client.list_sessions()
    diagnostic = caught.value.diagnostic
    assert diagnostic.category == "auth" and diagnostic.status_code == 401
    assert caught.value.permanent
    assert "wrong-password-123" not in str(caught.value) + diagnostic.model_dump_json()


def test_it_classifies_a_stopped_agent_as_unreachable():
    client = OpencodeClient(f"http://127.0.0.1:{free_port()}", "pw-unused")
    with client, pytest.raises(OpencodeError) as caught:
        client.health()
    assert caught.value.diagnostic.category == "runtime_unreachable"
    assert caught.value.retryable


def test_it_answers_a_missing_question_with_a_classified_error(opencode_server):
    client = OpencodeClient(opencode_server.base_url, opencode_server.password)
    with client, pytest.raises(OpencodeError) as caught:
        client.reply_question("que_doesnotexist", [["Red"]])
    assert caught.value.status_code in (400, 404)
