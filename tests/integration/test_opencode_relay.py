"""The chat relay and consumer against the real, pinned OpenCode server."""

from __future__ import annotations

import asyncio
import json
import shutil
import time

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from doce.opencode.client import OpencodeClient
from doce.opencode.relay import RelayHub, set_relay_hub
from projects.models import Project
from projects.routing import websocket_urlpatterns
from tests.opencode.fixtures import require_opencode, shared_scripted_model, start_opencode
from tests.opencode.harness import OpencodeUnavailable
from tests.opencode.helpers import of_type, texts_by_message
from tests.opencode.proxy import CuttableProxy

pytestmark = [
    pytest.mark.opencode,
    pytest.mark.timeout(120),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(name="opencode_server")
def _opencode_server():
    """The session's shared OpenCode server (see tests.opencode.fixtures)."""
    return require_opencode()


app = URLRouter(websocket_urlpatterns)


@database_sync_to_async
def make_project(owner, server, session_id: str, *, port: int | None = None) -> Project:
    return Project.objects.create(
        owner=owner,
        name="Relay",
        prompt="p",
        status=Project.Status.RUNNING,
        agent_state="ready",
        agent_port=port or server.port,
        agent_password=server.password,
        agent_session_id=session_id,
    )


async def viewer(user, project: Project) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(app, f"/ws/projects/{project.id}/chat/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def collect(communicator, until, timeout: float = 30) -> list[dict]:
    """Receive events until `until(event)` is true; return them all (keep-alives dropped)."""
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out; got {[(e['type'], e['payload']) for e in events]}"
        try:
            event = json.loads(await communicator.receive_from(timeout=remaining))
        except TimeoutError:
            raise AssertionError(
                f"timed out; got {[(e['type'], e['payload']) for e in events]}"
            ) from None
        if event["type"] == "chat.keepalive":
            continue
        events.append(event)
        if until(event):
            return events


def is_idle(event: dict) -> bool:
    return event["type"] == "chat.session.status" and event["payload"]["status"] == "idle"


def new_session(server) -> str:
    with OpencodeClient(server.base_url, server.password) as client:
        return client.create_session().id


async def test_it_relays_one_upstream_to_two_viewers_and_rebuilds_history(opencode_server, alice):
    hub = RelayHub(linger=0)
    set_relay_hub(hub)
    project = await make_project(alice, opencode_server, new_session(opencode_server))
    first, second = await viewer(alice, project), await viewer(alice, project)
    for communicator in (first, second):
        history = await collect(communicator, lambda e: e["type"] == "chat.history")
        assert history[-1]["payload"]["events"] == []
        await collect(communicator, is_idle)  # the catch-up says where the session stands
    await first.send_to(text_data=json.dumps({"type": "prompt", "text": "[script:text] Two"}))
    got_first = await collect(first, lambda e: e["type"] == "chat.message.final")
    got_second = await collect(second, lambda e: e["type"] == "chat.message.final")
    assert of_type(got_first, "chat.ack")[0]["payload"] == {"action": "prompt"}
    relayed = [e for e in got_first if e["type"] != "chat.ack"]
    assert [e["type"] for e in relayed] == [e["type"] for e in got_second]
    assert [e["payload"] for e in relayed] == [e["payload"] for e in got_second]
    final = of_type(got_second, "chat.message.final")[0]["payload"]
    assert texts_by_message(got_second)[final["messageId"]] == final["text"]
    relay = hub.relays[project.id]
    assert relay.dropped == 0 and len(relay.viewers) == 2
    await collect(first, is_idle)

    late = await viewer(alice, project)
    history = (await collect(late, lambda e: e["type"] == "chat.history"))[0]
    kinds = [e["type"] for e in history["payload"]["events"]]
    assert kinds[0] == "chat.message.user" and "chat.message.final" in kinds
    rebuilt = of_type(history["payload"]["events"], "chat.message.final")[0]["payload"]
    assert rebuilt["text"] == final["text"] and rebuilt["html"] == final["html"]
    for communicator in (first, second, late):
        await communicator.disconnect()
    await asyncio.sleep(0.05)
    assert project.id not in hub.relays  # closed after the last viewer (linger 0)


async def test_it_catches_up_what_it_missed_while_cut_off(opencode_server, alice):
    proxy = await CuttableProxy(opencode_server.port).start()
    try:
        hub = RelayHub(linger=0)
        set_relay_hub(hub)
        project = await make_project(
            alice, opencode_server, new_session(opencode_server), port=proxy.port
        )
        communicator = await viewer(alice, project)
        await collect(communicator, is_idle)
        await communicator.send_to(
            text_data=json.dumps({"type": "prompt", "text": "[script:slow] Count"})
        )
        before = await collect(communicator, lambda e: "word03" in json.dumps(e))
        proxy.cut()  # the relay loses the agent; the agent keeps answering
        with OpencodeClient(opencode_server.base_url, opencode_server.password) as client:
            deadline = time.monotonic() + 30
            while project.agent_session_id in client.session_statuses():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
            stored = client.messages(project.agent_session_id)
        proxy.resume()
        after = await collect(communicator, lambda e: e["type"] == "chat.message.final")
        answer = stored[-1]
        stored_text = "".join(p.text or "" for p in answer.parts if p.type == "text").strip()
        assert stored_text.endswith("word59")
        events = before + after
        assert [e["payload"]["state"] for e in of_type(events, "chat.connection")][-2:] == [
            "reconnecting",
            "connected",
        ]
        assert texts_by_message(events)[answer.info.id] == stored_text  # nothing lost
        finals = of_type(events, "chat.message.final")
        assert [f["payload"]["messageId"] for f in finals] == [answer.info.id]
        assert finals[0]["payload"]["text"] == stored_text
        assert "interrupted" not in finals[0]["payload"]
        await communicator.disconnect()
    finally:
        await proxy.stop()


async def test_it_recovers_when_the_agent_is_killed_mid_stream(alice, tmp_path):
    model = shared_scripted_model()
    try:
        server = start_opencode(model, tmp_path / "agent")
    except OpencodeUnavailable:
        require_opencode()
        raise
    try:
        hub = RelayHub(linger=0)
        set_relay_hub(hub)
        project = await make_project(alice, server, new_session(server))
        communicator = await viewer(alice, project)
        await collect(communicator, is_idle)
        await communicator.send_to(
            text_data=json.dumps({"type": "prompt", "text": "[script:slow] Count"})
        )
        before = await collect(communicator, lambda e: "word03" in json.dumps(e))
        await asyncio.to_thread(server.kill)
        await asyncio.to_thread(server.start)
        after = await collect(communicator, is_idle, timeout=60)
        events = before + after
        states = [e["payload"]["state"] for e in of_type(events, "chat.connection")]
        assert states[-2:] == ["reconnecting", "connected"]
        assert states.count("reconnecting") == 1  # once per outage, not per retry
        shown = texts_by_message(events)
        finals = of_type(events, "chat.message.final")
        assert len(finals) == 1  # the interrupted answer is closed, exactly once
        final = finals[0]["payload"]
        assert final["interrupted"] is True
        # What the viewer saw stays: the crashed agent lost it, doce did not.
        assert final["text"] == shown[final["messageId"]]
        assert final["text"].startswith("word00 word01 word02 word03")

        # The restarted agent streams the next answer live to the same viewer.
        await communicator.send_to(
            text_data=json.dumps({"type": "prompt", "text": "[script:text] Again"})
        )
        more = await collect(communicator, lambda e: e["type"] == "chat.message.final")
        text = of_type(more, "chat.message.final")[0]["payload"]["text"]
        assert "scripted answer about Again" in text
        await communicator.disconnect()
    finally:
        server.kill()
        shutil.rmtree(tmp_path / "agent", ignore_errors=True)


async def test_a_viewer_who_comes_back_mid_answer_sees_all_of_it(opencode_server, alice):
    # Linger 0: without a streaming answer the relay would close as soon as she left.
    hub = RelayHub(linger=0)
    set_relay_hub(hub)
    project = await make_project(alice, opencode_server, new_session(opencode_server))
    first = await viewer(alice, project)
    await collect(first, is_idle)
    await first.send_to(text_data=json.dumps({"type": "prompt", "text": "[script:slow] Count"}))
    await collect(first, lambda e: "word03" in json.dumps(e))
    await first.disconnect()
    await asyncio.sleep(0.3)
    assert project.id in hub.relays  # kept: the answer is still streaming

    back = await viewer(alice, project)
    history = (await collect(back, lambda e: e["type"] == "chat.history"))[0]["payload"]
    shown = texts_by_message(history["events"])
    assert any(text.startswith("word00 word01 word02 word03") for text in shown.values())
    assert not [e for e in history["events"] if e["payload"].get("partial")]
    events = history["events"] + await collect(back, lambda e: e["type"] == "chat.message.final")
    final = of_type(events, "chat.message.final")[0]["payload"]
    assert final["text"].startswith("word00") and final["text"].endswith("word59")
    assert texts_by_message(events)[final["messageId"]] == final["text"]
    await back.disconnect()


async def test_a_relay_opened_mid_answer_marks_the_text_it_missed_as_partial(
    opencode_server, alice
):
    hub = RelayHub(linger=0)
    set_relay_hub(hub)
    session_id = new_session(opencode_server)
    project = await make_project(alice, opencode_server, session_id)
    # Sent without any relay, as the worker sends a project's first prompt.
    with OpencodeClient(opencode_server.base_url, opencode_server.password) as client:
        client.prompt_async(session_id, "[script:slow] Count")
        deadline = time.monotonic() + 30
        while session_id not in client.session_statuses():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    await asyncio.sleep(1.5)  # some of the answer streams before anyone watches

    late = await viewer(alice, project)
    events = await collect(late, lambda e: e["type"] == "chat.message.final", timeout=60)
    final = of_type(events, "chat.message.final")[0]["payload"]
    parts = [
        e["payload"]
        for e in of_type(events, "chat.message.part.added")
        if e["payload"]["messageId"] == final["messageId"]
    ]
    assert parts[0].get("partial") is True  # the viewer is told the start is missing
    full = [p for p in parts if "text" in p and not p.get("partial")]
    assert full and full[-1]["text"].startswith("word00")  # then the whole text replaces it
    assert final["text"].startswith("word00") and final["text"].endswith("word59")
    assert "partial" not in parts[-1]
    await late.disconnect()
