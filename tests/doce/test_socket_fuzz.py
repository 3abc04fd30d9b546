"""WebSocket fuzz: a fixed corpus of malformed frames and query strings against every socket
route of the full ASGI app (origin check and session auth included).

Each frame must get an error reply on a socket that stays open, or a close with a documented
code (`doce.consumers`); no consumer may crash and nothing may be logged at ERROR.
"""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import quote

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

import jobqueue
from doce.consumers import CLOSE_BAD_REQUEST, CLOSE_NOT_FOUND, CLOSE_TOO_BIG
from doce.opencode.relay import RelayHub, set_relay_hub
from projects.models import Project
from tests.ws import session_cookie, ws_communicator

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

DEEP = "[" * 100_000 + "]" * 100_000
HUGE_NUMBER = "1" + "0" * 5_000

# (label, text or bytes): each is answered with an error and the socket stays open.
MALFORMED = [
    ("not json", "not json"),
    ("truncated json", '{"type": "prompt"'),
    ("binary", b"\x00\x01\xffbinary"),
    ("empty binary", b""),
    ("5,000-digit number", HUGE_NUMBER),
    ("huge number in a field", '{"type": "abort", "n": ' + HUGE_NUMBER + "}"),
    ("100,000-deep array", DEEP),
    ("deep object", '{"a":' * 20_000 + "1" + "}" * 20_000),
    ("unknown type", json.dumps({"type": "explode"})),
    ("type of the wrong type", json.dumps({"type": 5})),
    ("a list", json.dumps(["prompt"])),
    ("null", "null"),
    ("prompt text a list", json.dumps({"type": "prompt", "text": ["a"]})),
    ("answers not a list", json.dumps({"type": "question.reply", "requestId": "q", "answers": 1})),
    ("NUL in a request id", json.dumps({"type": "permission.reply", "requestId": "a\u0000b"})),
    ("NUL outside JSON", "\u0000"),
    # Refused by the prompt rules (`services.clean_prompt`) on the chat, like any message
    # on the streams.
    ("NUL in a prompt", json.dumps({"type": "prompt", "text": "a\u0000b"})),
]


class IdleStream:
    """An upstream that never says anything (the chat route needs a relay, not an agent)."""

    def __init__(self, target_provider) -> None:
        self.target_provider = target_provider

    async def items(self):
        await asyncio.Event().wait()
        yield  # pragma: no cover


@pytest.fixture
def routes(alice):
    project = Project.objects.create(owner=alice, name="Site", prompt="p")
    job = jobqueue.enqueue(
        "docker.stop", {"project_id": project.id}, serial_key=f"project:{project.id}"
    )
    return [
        "/ws/projects/events/",
        f"/ws/projects/{project.id}/events/",
        f"/ws/projects/{project.id}/chat/",
        f"/ws/projects/{project.id}/logs/",
        "/ws/queue/events/",
        f"/ws/queue/jobs/{job.pk}/events/",
    ]


@pytest.fixture
async def quiet_relay():
    set_relay_hub(RelayHub(linger=0.01, stream_factory=IdleStream))


def _is_error_reply(message: dict) -> bool:
    return message.get("type") in ("error", "chat.error")


async def _open(path: str, cookie: bytes):
    communicator = ws_communicator(path, cookie)
    connected, _ = await communicator.connect()
    assert connected, path
    return communicator


async def _send(communicator, frame: str | bytes) -> None:
    # Raw ASGI input: the communicator's `send_to` refuses an empty frame.
    key = "bytes" if isinstance(frame, bytes) else "text"
    await communicator.send_input({"type": "websocket.receive", key: frame})


async def _next_reply(communicator) -> dict:
    """The next message that answers the client (history, keepalives and log chunks that
    the stream sends on its own are skipped)."""
    while True:
        output = await communicator.receive_output(timeout=10)
        if output["type"] == "websocket.close":
            return output
        message = json.loads(output["text"])
        if message.get("type") not in ("chat.history", "chat.keepalive", "log.chunk"):
            return message


async def test_it_answers_every_malformed_frame_on_every_route(alice, routes, quiet_relay, caplog):
    cookie = await sync_to_async(session_cookie)(alice)
    for path in routes:
        communicator = await _open(path, cookie)
        for label, frame in MALFORMED:
            await _send(communicator, frame)
            reply = await _next_reply(communicator)
            assert _is_error_reply(reply), (path, label, reply)
        await communicator.disconnect()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_it_closes_with_1009_on_an_oversized_frame_on_every_route(
    alice, routes, quiet_relay, caplog
):
    cookie = await sync_to_async(session_cookie)(alice)
    for path in routes:
        for frame in (
            "x" * (settings.DOCE_WS_MAX_MESSAGE_BYTES + 1),
            b"\x00" * (settings.DOCE_WS_MAX_MESSAGE_BYTES + 1),
            # Under the limit in characters, over it in UTF-8 bytes.
            "é" * (settings.DOCE_WS_MAX_MESSAGE_BYTES // 2 + 1),
        ):
            communicator = await _open(path, cookie)
            await _send(communicator, frame)
            assert await _next_reply(communicator) == {
                "type": "websocket.close",
                "code": CLOSE_TOO_BIG,
            }, path
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("value", ["²", "١٢", "-1", "1e3", " 1", "0x10", HUGE_NUMBER, str(2**63)])
async def test_it_closes_a_malformed_cursor_with_4400(alice, routes, quiet_relay, caplog, value):
    cookie = await sync_to_async(session_cookie)(alice)
    streams = [p for p in routes if not p.endswith("/chat/")]
    for path in streams:
        name = "offset" if path.endswith("/logs/") else "after"
        communicator = ws_communicator(f"{path}?{name}={quote(value)}", cookie)
        connected, _ = await communicator.connect()
        assert connected
        assert await communicator.receive_output(timeout=5) == {
            "type": "websocket.close",
            "code": CLOSE_BAD_REQUEST,
        }, (path, value)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_it_accepts_the_largest_cursor(alice, routes, quiet_relay):
    cookie = await sync_to_async(session_cookie)(alice)
    path = routes[1]
    communicator = ws_communicator(f"{path}?after={2**63 - 1}", cookie)
    connected, _ = await communicator.connect()
    assert connected
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


@pytest.mark.parametrize(
    "path", ["/ws/nothing/", "/", "/ws/projects/not-an-id/chat/", "/ws/queue/jobs/x/events/"]
)
@pytest.mark.parametrize("who", ["alice", "anonymous"])
async def test_it_closes_an_unknown_path_with_4404(alice, path, who, caplog):
    cookie = await sync_to_async(session_cookie)(alice) if who == "alice" else None
    communicator = ws_communicator(path, cookie)
    connected, _ = await communicator.connect()
    assert connected
    assert await communicator.receive_output(timeout=5) == {
        "type": "websocket.close",
        "code": CLOSE_NOT_FOUND,
    }
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("not json", "not valid JSON"),
        (DEEP, "nested too deeply"),
        (HUGE_NUMBER, "number too long"),
        ('{"n": ' + HUGE_NUMBER + "}", "number too long"),
    ],
)
def test_parse_json_says_why_without_internals(text, says):
    from doce.consumers import NotJson, parse_json

    with pytest.raises(NotJson) as refused:
        parse_json(text)
    assert says in str(refused.value) and "sys." not in str(refused.value)
