"""The event stream and normalizer against the real, pinned OpenCode server."""

from __future__ import annotations

import asyncio
import time

import pytest

from doce.opencode.agents import AgentTarget
from doce.opencode.client import AsyncOpencodeClient, OpencodeClient
from doce.opencode.completion import check_completion
from doce.opencode.normalize import Normalizer
from doce.opencode.stream import EventStream
from tests.opencode.fixtures import require_opencode
from tests.opencode.helpers import of_type, texts_by_message

pytestmark = [pytest.mark.opencode, pytest.mark.timeout(90)]


@pytest.fixture(name="opencode_server")
def _opencode_server():
    """The session's shared OpenCode server (see tests.opencode.fixtures)."""
    return require_opencode()


async def run_prompt(server, text: str, *, abort_on_delta: bool = False, timeout: float = 40):
    """Send `text` in a new session; return (session id, normalized events) once idle."""
    target = AgentTarget(server.base_url, server.password)

    async def provide():
        return target

    client = AsyncOpencodeClient(server.base_url, server.password)
    session = await client.create_session()
    normalizer = Normalizer("p-test", session.id)
    events: list[dict] = []
    stream = EventStream(provide).items()
    try:
        first = await asyncio.wait_for(anext(stream), 10)
        assert first.kind == "connected"
        await client.prompt_async(session.id, text)
        busy = aborted = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            item = await asyncio.wait_for(anext(stream), deadline - time.monotonic())
            if item.kind != "event":
                continue
            for event in normalizer.feed(item.event):
                events.append(event)
                status = event["payload"].get("status")
                busy = busy or status == "busy"
                if abort_on_delta and not aborted and event["type"] == "chat.message.part.added":
                    aborted = True
                    await client.abort(session.id)
                if busy and status == "idle":
                    return session.id, events
        raise AssertionError(f"no idle within {timeout} s; got {[e['type'] for e in events]}")
    finally:
        await stream.aclose()
        await client.aclose()


async def test_it_streams_text_deltas_that_add_up_to_the_final_text(opencode_server):
    session_id, events = await run_prompt(opencode_server, "[script:text] Hello there")
    deltas = [e for e in of_type(events, "chat.message.part.added") if "deltaText" in e["payload"]]
    assert len(deltas) > 5  # token by token, not in one burst
    finals = of_type(events, "chat.message.final")
    assert len(finals) == 1
    final = finals[0]["payload"]
    assert final["text"].startswith("Hello! This is a scripted answer about Hello there")
    delta_text = "".join(e["payload"]["deltaText"] for e in deltas)
    assert delta_text == final["text"]
    assert texts_by_message(events)[final["messageId"]] == final["text"]
    assert final["html"].startswith("<p>Hello!")
    assert all(e["sessionId"] == session_id for e in events)


async def test_it_reports_the_write_tool_the_file_and_busy_then_idle(opencode_server):
    _, events = await run_prompt(opencode_server, "[script:default] A bakery in Lisbon")
    statuses = [e["payload"]["status"] for e in of_type(events, "chat.session.status")]
    assert statuses[0] == "busy" and statuses[-1] == "idle"
    starts = of_type(events, "chat.tool.start")
    finishes = of_type(events, "chat.tool.finish")
    # One call: its card starts while pending and is said again as its input arrives.
    calls = {(s["payload"]["toolCallId"], s["payload"]["name"]) for s in starts}
    assert [name for _, name in calls] == ["write"]
    assert [f["payload"]["toolCallId"] for f in finishes] == [starts[0]["payload"]["toolCallId"]]
    assert starts[-1]["payload"]["input"]["filePath"] == "src/pages/index.astro"
    changed = [e["payload"]["path"] for e in of_type(events, "chat.file.changed")]
    assert "src/pages/index.astro" in changed
    page = (opencode_server.project_dir / "src/pages/index.astro").read_text()
    assert "<h1>A bakery in Lisbon</h1>" in page
    finals = of_type(events, "chat.message.final")
    message_ids = [f["payload"]["messageId"] for f in finals]
    assert len(message_ids) == len(set(message_ids)) == 2  # tool step + answer, once each
    assert "A bakery in Lisbon" in finals[-1]["payload"]["text"]
    user = of_type(events, "chat.message.user")
    assert len(user) == 1 and user[0]["payload"]["text"].endswith("A bakery in Lisbon")
    assert all("[script:" not in t for t in texts_by_message(events).values())


async def test_it_stops_mid_stream_on_abort(opencode_server):
    _, events = await run_prompt(opencode_server, "[script:slow] Count", abort_on_delta=True)
    finals = of_type(events, "chat.message.final")
    assert len(finals) == 1
    assert finals[0]["payload"]["aborted"] is True
    assert "word59" not in finals[0]["payload"]["text"]  # it really stopped early
    assert of_type(events, "chat.diagnostic") == []


async def test_it_turns_a_provider_error_into_a_readable_diagnostic(opencode_server):
    _, events = await run_prompt(opencode_server, "[script:provider-error] Anything")
    finals = of_type(events, "chat.message.final")
    assert len(finals) == 1 and finals[0]["payload"]["error"]["name"] == "APIError"
    # One card per failure: the failed message carries the diagnostic, and the session's
    # error event for the same failure adds no second card.
    assert of_type(events, "chat.diagnostic") == []
    diagnostic = finals[0]["payload"]["error"]["diagnostic"]
    assert diagnostic["category"] == "provider_model"
    assert "does not support this request" in diagnostic["message"]
    assert diagnostic["retryable"] is False
    assert diagnostic["remediation"]


def test_it_sees_completion_only_after_the_agent_answered(opencode_server):
    with OpencodeClient(opencode_server.base_url, opencode_server.password) as client:
        session = client.create_session()
        since_ms = int(time.time() * 1000)
        client.prompt_async(session.id, "[script:text] Completion please")
        first = check_completion(client, session.id, since_ms=since_ms)
        assert first.state == "pending"  # right after the 204 the agent has not answered
        check = first
        deadline = time.monotonic() + 30
        while not check.finished and time.monotonic() < deadline:
            time.sleep(0.2)
            check = check_completion(
                client, session.id, since_ms=since_ms, busy_seen=check.busy_seen
            )
        assert check.state == "done"
        answer = client.messages(session.id)[-1]
        assert check.message_id == answer.info.id and answer.info.role == "assistant"


def test_it_reports_a_failed_turn_as_failed_with_its_diagnostic(opencode_server):
    with OpencodeClient(opencode_server.base_url, opencode_server.password) as client:
        session = client.create_session()
        since_ms = int(time.time() * 1000)
        client.prompt_async(session.id, "[script:provider-error] Fail please")
        check = check_completion(client, session.id, since_ms=since_ms)
        deadline = time.monotonic() + 30
        while not check.finished and time.monotonic() < deadline:
            time.sleep(0.2)
            check = check_completion(
                client, session.id, since_ms=since_ms, busy_seen=check.busy_seen
            )
        assert check.state == "failed" and check.reason == "agent_error"
        assert check.diagnostic is not None and check.diagnostic.category == "provider_model"
