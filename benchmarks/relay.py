"""Benchmark the chat relay: synthetic upstream SSE → real relay → WebSocket viewers.

    .venv/bin/python benchmarks/relay.py [--quick]

A separate process serves a synthetic OpenCode `/event` stream at a set rate (each event a
`message.part.delta` carrying its send time). The real relay path consumes it: `EventStream`
(httpx streaming + the SSE parser), the `Normalizer`, the `RelayHub` fan-out and the real
`ChatConsumer`, measured at Channels `WebsocketCommunicator` clients in this process (the
ASGI WebSocket protocol without a network socket or daphne's framing). Prints one JSON object
per scenario:

    {"scenario", "viewers", "rate", "events_per_s", "added_latency_p50_ms",
     "added_latency_p99_ms", "dropped"}

`added_latency` is from the source writing an event to a viewer receiving it (ms);
`events_per_s` is what one viewer received per second of streaming; `dropped` is events sent
minus events received, summed over viewers. `saturation` offers 15,000 events/s to probe the
ceiling. Targets: p99 ≤ 20 ms at 500 events/s; ≥ 5,000 events/s to one viewer; 20 viewers on
one upstream with 0 dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SESSION = "ses_bench"
START_DELAY = 1.0  # seconds the source waits after a client connects, so all viewers join


# --- the synthetic upstream (runs in its own process) -----------------------------------------


def serve_source(port_queue, rate: int, duration: float) -> None:
    asyncio.run(_source(port_queue, rate, duration))


async def _source(port_queue, rate: int, duration: float) -> None:
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        path = request.split(b" ", 2)[1].decode()
        if path.startswith("/event"):
            with contextlib.suppress(ConnectionError):  # the relay went away
                await stream(writer)
            done.set()
            return
        body = b"{}" if path.startswith("/session/status") else b"[]"
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    async def stream(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
        writer.write(b'data: {"type":"server.connected","properties":{}}\n\n')
        await writer.drain()
        await asyncio.sleep(START_DELAY)
        loop = asyncio.get_running_loop()
        start = loop.time()
        total = int(rate * duration)
        sent = 0
        while sent < total:
            due = min(total, int((loop.time() - start) * rate) + 1)
            while sent < due:
                event = {
                    "type": "message.part.delta",
                    "properties": {
                        "sessionID": SESSION,
                        "messageID": "msg_bench",
                        "partID": "prt_bench",
                        "field": "text",
                        "delta": f"{sent}:{time.time_ns()}",
                    },
                }
                writer.write(b"data: " + json.dumps(event).encode() + b"\n\n")
                sent += 1
            await writer.drain()
            await asyncio.sleep(0.001)
        # Stay open (idle) so the relay does not reconnect while viewers drain.
        await asyncio.sleep(600)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port_queue.put(server.sockets[0].getsockname()[1])
    parent = os.getppid()
    async with server:
        while os.getppid() == parent:  # exit with the benchmark, even if it was killed
            await asyncio.sleep(0.5)


# --- the measured side --------------------------------------------------------------------


def setup_django(data_dir: str) -> None:
    os.environ["DOCE_DATA_DIR"] = data_dir
    os.environ["DOCE_LOG_LEVEL"] = "WARNING"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "doce.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


async def run_scenario(name: str, viewers: int, rate: int, duration: float) -> dict:
    from channels.db import database_sync_to_async
    from channels.routing import URLRouter
    from channels.testing import WebsocketCommunicator
    from django.contrib.auth import get_user_model

    from doce.opencode.relay import RelayHub, set_relay_hub
    from projects.models import Project
    from projects.routing import websocket_urlpatterns

    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    source = ctx.Process(target=serve_source, args=(ports, rate, duration), daemon=True)
    source.start()
    port = ports.get(timeout=20)

    @database_sync_to_async
    def make_project():
        user, _ = get_user_model().objects.get_or_create(username="bench")
        return Project.objects.create(
            owner=user, name=name, prompt="p", agent_port=port, agent_session_id=SESSION
        ), user

    project, user = await make_project()
    hub = RelayHub(linger=0)
    set_relay_hub(hub)
    app = URLRouter(websocket_urlpatterns)
    total = int(rate * duration)
    clients = []
    for _ in range(viewers):
        communicator = WebsocketCommunicator(app, f"/ws/projects/{project.id}/chat/")
        communicator.scope["user"] = user
        connected, _ = await communicator.connect()
        assert connected
        clients.append(communicator)

    async def watch(communicator) -> tuple[list[float], float, float]:
        latencies: list[float] = []
        first = last = 0.0
        deadline = time.monotonic() + START_DELAY + duration + 15
        while len(latencies) < total and time.monotonic() < deadline:
            try:
                raw = await communicator.receive_from(timeout=max(0.1, deadline - time.monotonic()))
            except (TimeoutError, AssertionError):  # timed out, or closed for falling behind
                break
            event = json.loads(raw)
            if event["type"] != "chat.message.part.added":
                continue
            now = time.time_ns()
            sent_ns = int(event["payload"]["deltaText"].split(":")[1])
            latencies.append((now - sent_ns) / 1e6)
            last = time.monotonic()
            first = first or last
        return latencies, first, last

    results = await asyncio.gather(*(watch(c) for c in clients))
    source.kill()
    for communicator in clients:
        with contextlib.suppress(Exception, asyncio.CancelledError):  # closed for lagging
            await asyncio.wait_for(communicator.disconnect(), 5)
    await hub.close_all()
    all_latencies = sorted(x for lats, _, _ in results for x in lats)
    received = [len(lats) for lats, _, _ in results]
    lats0, first0, last0 = results[0]
    span = max(last0 - first0, 1e-9)
    return {
        "scenario": name,
        "viewers": viewers,
        "rate": rate,
        "events_per_s": round((len(lats0) - 1) / span, 1) if len(lats0) > 1 else 0.0,
        "added_latency_p50_ms": round(_pct(all_latencies, 50), 2),
        "added_latency_p99_ms": round(_pct(all_latencies, 99), 2),
        "dropped": sum(total - n for n in received),
    }


def _pct(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    index = min(len(values) - 1, round(pct / 100 * (len(values) - 1)))
    return values[index]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="shorter runs (about 15 s in all)")
    parser.add_argument("--only", help="run one scenario by name")
    args = parser.parse_args(argv)
    duration = 2.0 if args.quick else 6.0
    scenarios = [
        ("latency", 1, 500),
        ("throughput", 1, 6000),
        ("fan_out", 20, 500),
        ("saturation", 1, 15000),
    ]
    with tempfile.TemporaryDirectory(prefix="doce-bench-") as data_dir:
        setup_django(data_dir)
        for name, viewers, rate in scenarios:
            if args.only and name != args.only:
                continue
            result = asyncio.run(run_scenario(name, viewers, rate, duration))
            print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
