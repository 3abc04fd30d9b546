"""The chat consumer and relay hub with a fake upstream (the real one: tests/integration)."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from doce.opencode.relay import RelayHub, set_relay_hub
from doce.opencode.stream import StreamItem
from projects import services
from projects.models import Project
from projects.routing import websocket_urlpatterns

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]

app = URLRouter(websocket_urlpatterns)


class FakeStream:
    """Stands in for `EventStream`: plays what a test puts on `FakeStream.feed`."""

    instances: list[FakeStream] = []

    def __init__(self, target_provider) -> None:
        self.target_provider = target_provider
        self.feed: asyncio.Queue = asyncio.Queue()
        FakeStream.instances.append(self)

    async def items(self):
        await self.target_provider()
        while True:
            yield StreamItem("event", event=await self.feed.get())


@pytest.fixture
def hub():
    FakeStream.instances = []
    return RelayHub(linger=0.05, stream_factory=FakeStream)


@database_sync_to_async
def project_of(owner, **fields) -> Project:
    # A running project: prompts go straight to its agent (others go through the queue).
    fields.setdefault("status", Project.Status.RUNNING)
    fields.setdefault("agent_state", "ready")
    return Project.objects.create(owner=owner, name="Site", prompt="p", **fields)


async def connect(user, project_id: str, hub: RelayHub) -> WebsocketCommunicator:
    set_relay_hub(hub)
    communicator = WebsocketCommunicator(app, f"/ws/projects/{project_id}/chat/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def receive(communicator) -> dict:
    return json.loads(await communicator.receive_from(timeout=5))


async def receive_type(communicator, kind: str) -> dict:
    while True:
        event = await receive(communicator)
        if event["type"] == kind:
            return event


def text_event(session: str, text: str) -> dict:
    return {
        "type": "message.part.delta",
        "properties": {
            "sessionID": session,
            "messageID": "msg_1",
            "partID": "prt_1",
            "field": "text",
            "delta": text,
        },
    }


async def test_it_closes_anonymous_connections_with_4401(hub, alice):
    project = await project_of(alice)
    communicator = await connect(AnonymousUser(), project.id, hub)
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    assert hub.relays == {}


async def test_it_closes_another_users_project_as_not_found(hub, alice, bob):
    project = await project_of(alice)
    communicator = await connect(bob, project.id, hub)
    assert (await communicator.receive_output(timeout=5))["code"] == 4404
    missing = await connect(bob, "0123456789abcdef", hub)
    assert (await missing.receive_output(timeout=5))["code"] == 4404
    assert hub.relays == {}


async def test_it_sends_history_then_relays_one_upstream_to_two_viewers(hub, alice):
    project = await project_of(alice, agent_port=45999, agent_session_id="ses_1")
    first, second = await connect(alice, project.id, hub), await connect(alice, project.id, hub)
    for communicator in (first, second):
        history = await receive(communicator)
        assert history["type"] == "chat.history" and history["payload"]["events"] == []
    assert len(FakeStream.instances) == 1  # one upstream for both viewers
    stream = FakeStream.instances[0]
    for piece in ("Hel", "lo", "!"):
        await stream.feed.put(text_event("ses_1", piece))
    await stream.feed.put(text_event("ses_other", "not ours"))
    for communicator in (first, second):
        got = [await receive_type(communicator, "chat.message.part.added") for _ in range(3)]
        assert [g["payload"]["deltaText"] for g in got] == ["Hel", "lo", "!"]
        assert all(g["projectId"] == project.id and g["sessionId"] == "ses_1" for g in got)
        assert await communicator.receive_nothing(timeout=0.1)  # the other session's event
    third = await connect(alice, project.id, hub)
    history = await receive(third)
    assert [e["payload"]["text"] for e in history["payload"]["events"]] == ["Hello!"]
    for communicator in (first, second, third):
        await communicator.disconnect()


async def test_it_closes_the_upstream_after_the_last_viewer_lingers_out(hub, alice):
    hub.linger = 2.0  # long enough to come back within it on a loaded machine
    project = await project_of(alice, agent_port=45999, agent_session_id="ses_1")
    communicator = await connect(alice, project.id, hub)
    await communicator.disconnect()
    assert project.id in hub.relays  # lingering
    again = await connect(alice, project.id, hub)  # back within the linger: same upstream
    assert project.id in hub.relays and len(FakeStream.instances) == 1
    hub.linger = 0.05
    await again.disconnect()
    for _ in range(100):  # closed once the (short) linger is over
        if project.id not in hub.relays:
            break
        await asyncio.sleep(0.05)
    assert project.id not in hub.relays


async def test_it_answers_malformed_messages_with_chat_error_and_stays_open(hub, alice):
    project = await project_of(alice, agent_port=45999, agent_session_id="ses_1")
    communicator = await connect(alice, project.id, hub)
    await receive(communicator)
    bad = [
        "not json",
        json.dumps(["a list"]),
        json.dumps({"type": "explode"}),
        json.dumps({"type": "prompt", "text": 3}),
        json.dumps({"type": "permission.reply", "requestId": "../x", "reply": "once"}),
        json.dumps({"type": "question.reply", "requestId": "que_1", "answers": "Red"}),
        json.dumps({"type": "abort", "extra": 1}),
        json.dumps({"type": "restore", "messageId": "../msg"}),
        json.dumps({"type": "restore"}),
        "x" * 200_000,
    ]
    for message in bad:
        await communicator.send_to(text_data=message)
        error = await receive_type(communicator, "chat.error")
        assert error["payload"]["code"] == "invalid_message", message[:40]
    # Well-formed, but the prompt rules (services.send_prompt, shared with the API) refuse it.
    for message in ({"type": "prompt", "text": "   "}, {"type": "prompt", "text": "a" * 20_001}):
        await communicator.send_to(text_data=json.dumps(message))
        error = await receive_type(communicator, "chat.error")
        assert error["payload"]["code"] == "rejected", message["text"][:10]
    await communicator.send_to(text_data=json.dumps({"type": "explode"}))
    assert (await receive(communicator))["type"] == "chat.error"  # still open and answering
    await communicator.disconnect()


async def test_it_explains_when_there_is_no_agent_or_no_session(hub, alice):
    no_agent = await project_of(alice)
    communicator = await connect(alice, no_agent.id, hub)
    assert (await receive(communicator))["type"] == "chat.history"
    # Connecting while the agent is not up yet is normal (the project is starting): no alarm.
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.send_to(text_data=json.dumps({"type": "abort"}))
    notice = await receive(communicator)
    assert notice["type"] == "chat.diagnostic"
    assert notice["payload"]["diagnostic"]["category"] == "runtime_unreachable"
    await communicator.disconnect()

    no_session = await project_of(alice, agent_port=45998)
    communicator = await connect(alice, no_session.id, hub)
    await receive(communicator)
    await communicator.send_to(text_data=json.dumps({"type": "abort"}))
    error = await receive_type(communicator, "chat.error")
    assert error["payload"]["code"] == "no_session"
    await communicator.disconnect()


async def test_a_restore_of_a_project_without_a_running_agent_is_refused(hub, alice):
    project = await project_of(alice, agent_port=45998)  # an agent without a session
    communicator = await connect(alice, project.id, hub)
    await receive(communicator)
    for message in ({"type": "restore", "messageId": "msg_1"}, {"type": "unrestore"}):
        await communicator.send_to(text_data=json.dumps(message))
        error = await receive_type(communicator, "chat.error")
        assert error["payload"]["code"] == "rejected"
        assert "Start the project" in error["payload"]["message"]
    await communicator.disconnect()


async def test_a_restore_while_a_prompt_is_queued_is_refused_saying_why(hub, alice):
    project = await project_of(
        alice, agent_port=45998, agent_session_id="ses_1", prompt_state="queued"
    )
    communicator = await connect(alice, project.id, hub)
    await receive(communicator)
    for message in ({"type": "restore", "messageId": "msg_1"}, {"type": "unrestore"}):
        await communicator.send_to(text_data=json.dumps(message))
        error = await receive_type(communicator, "chat.error")
        assert error["payload"]["code"] == "rejected"
        assert error["payload"]["message"] == services.RESTORE_BUSY_MESSAGE
    await communicator.disconnect()


async def test_a_prompt_without_an_agent_session_goes_through_the_queue(hub, alice):
    from jobqueue.models import Job

    for fields in ({}, {"agent_port": 45998}):  # no agent yet; an agent without a session
        project = await project_of(alice, **fields)
        communicator = await connect(alice, project.id, hub)
        await receive(communicator)
        await communicator.send_to(text_data=json.dumps({"type": "prompt", "text": "hi"}))
        ack = await receive_type(communicator, "chat.ack")
        assert ack["payload"] == {"action": "prompt", "queued": True}
        jobs = Job.objects.filter(
            serial_key=f"project:{project.id}", type="opencode.sendUserPrompt"
        )
        assert await jobs.acount() == 1
        await communicator.disconnect()


async def test_it_closes_with_1009_on_a_message_over_the_limit(hub, alice, settings):
    settings.DOCE_WS_MAX_MESSAGE_BYTES = 64 * 1024
    project = await project_of(alice, agent_port=45999, agent_session_id="ses_1")
    communicator = await connect(alice, project.id, hub)
    await receive(communicator)
    await communicator.send_to(text_data=json.dumps({"type": "prompt", "text": "é" * 40_000}))
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 1009}


async def test_it_reports_an_unreachable_agent_as_a_diagnostic(hub, alice):
    project = await project_of(alice, agent_port=1, agent_session_id="ses_1")
    communicator = await connect(alice, project.id, hub)
    await receive(communicator)
    await communicator.send_to(text_data=json.dumps({"type": "abort"}))
    diagnostic = (await receive_type(communicator, "chat.diagnostic"))["payload"]["diagnostic"]
    assert diagnostic["category"] == "runtime_unreachable" and diagnostic["retryable"]
    await communicator.disconnect()


async def test_it_sends_keepalives(hub, alice, settings):
    settings.DOCE_CHAT_KEEPALIVE_SECONDS = 0.05
    project = await project_of(alice, agent_port=45999, agent_session_id="ses_1")
    communicator = await connect(alice, project.id, hub)
    assert (await receive_type(communicator, "chat.keepalive"))["projectId"] == project.id
    await communicator.disconnect()


async def test_a_viewer_that_falls_behind_is_told_to_reconnect(hub):
    from doce.opencode.relay import ProjectRelay

    relay = ProjectRelay(hub, "p1", resolve=None)
    slow, fast = asyncio.Queue(maxsize=2), asyncio.Queue()
    relay.viewers |= {slow, fast}
    relay.broadcast([{"n": i} for i in range(5)])
    assert fast.qsize() == 5 and relay.dropped == 1
    assert slow not in relay.viewers
    contents = [slow.get_nowait() for _ in range(slow.qsize())]
    assert contents[-1] is None  # the consumer closes and the browser reconnects
