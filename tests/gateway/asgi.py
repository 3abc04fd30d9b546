"""Drive doce's ASGI application in-process, as daphne would on one of its listeners."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from django.conf import settings


@dataclass
class Answer:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def json(self):
        return json.loads(self.body)


async def call(
    path: str,
    *,
    token: str | None = None,
    body: dict | bytes | None = None,
    method: str = "POST",
    port: int | None = None,
    headers: list[tuple[str, str]] | None = None,
    disconnect_after_chunks: int | None = None,
) -> Answer:
    """Send one HTTP request to `doce.asgi.application` arriving on `port` (default: the
    gateway's), and collect the answer. `disconnect_after_chunks`: the client goes away after
    that many body chunks."""
    from doce.asgi import application

    data = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
    raw = [(b"content-type", b"application/json"), (b"host", b"host.docker.internal")]
    if token is not None:
        raw.append((b"authorization", f"Bearer {token}".encode()))
    for name, value in headers or []:
        raw.append((name.encode(), value.encode()))
    path_only, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path_only,
        "raw_path": path_only.encode(),
        "query_string": query.encode(),
        "headers": raw,
        "client": ("172.17.0.2", 40000),
        "server": ("172.17.0.1", port or settings.DOCE_GATEWAY_PORT),
    }
    answer = Answer()
    gone = asyncio.Event()
    sent_body = False

    async def receive():
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": data, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = {k.decode(): v.decode() for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            if gone.is_set():
                return
            if message.get("body"):
                answer.chunks.append(message["body"])
                if (
                    disconnect_after_chunks is not None
                    and len(answer.chunks) >= disconnect_after_chunks
                ):
                    gone.set()

    await asyncio.wait_for(application(scope, receive, send), timeout=30)
    return answer
