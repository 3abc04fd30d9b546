#!/usr/bin/env python
"""Benchmark: what the model gateway adds between an agent and a local model server.

    .venv/bin/python benchmarks/gateway.py [--quick]

Prints one JSON object:

- `ttfb_ms`: time to the first response byte of a streamed chat request, p50/p99 direct to
  the model server and through the gateway, same run, requests alternating; `added_p50_ms`
  and `added_p99_ms` are the differences (target: added p99 ≤ 10 ms);
- `stream`: one streamed answer of N SSE chunks through the gateway: `chunks_per_s` counted
  as events received from the first byte to the end (target ≥ 5,000);
- `concurrent`: C streams at once through the gateway (each 100 chunks, 10 ms apart):
  `streams`, `errors`, `wall_s` (target: 50 streams, 0 errors).

Setup (not timed): a throwaway data directory and SQLite database, an administrator with an
OpenAI-compatible provider at the model server, a project with a gateway token; doce's web
server (`python -m doce.webserver`, daphne) with the gateway listener on 127.0.0.1; the model
server is a minimal asyncio HTTP server in this process that streams
`chat.completion.chunk` events as fast as asked. Every gateway request also writes its usage
row, as in production. Requests: 200 per side (50 with --quick); N = 20,000 (5,000); C = 50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CHUNK = (
    b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,'
    b'"delta":{"content":"word "},"finish_reason":null}]}\n\n'
)
USAGE = (
    b'data: {"id":"c","object":"chat.completion.chunk","choices":[],'
    b'"usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}}\n\ndata: [DONE]\n\n'
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the model server ------------------------------------------------------------------------


async def _serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = json.loads(await reader.readexactly(length)) if length else {}
        chunks = int(body.get("bench_chunks", 5))
        delay = float(body.get("bench_delay_ms", 0)) / 1000
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"cache-control: no-cache\r\nconnection: close\r\n\r\n"
        )
        for i in range(chunks):
            writer.write(CHUNK)
            if delay:
                await writer.drain()
                await asyncio.sleep(delay)
            elif i % 64 == 0:
                await writer.drain()
        writer.write(USAGE)
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


def start_model_server(port: int) -> None:
    loop = asyncio.new_event_loop()

    async def main() -> None:
        server = await asyncio.start_server(_serve_one, "127.0.0.1", port, backlog=512)
        async with server:
            await server.serve_forever()

    threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True).start()


# --- doce --------------------------------------------------------------------------------------

SETUP = """
from django.contrib.auth.models import User
from accounts.models import ProviderCredential
from projects.agent_config import issue_gateway_token
from projects.models import Project
user = User.objects.create_superuser("bench", "b@example.org", "bench-pass-1")
ProviderCredential.objects.create(user=user, kind="openai-compatible", provider_id="local",
    base_url="http://127.0.0.1:{model_port}/v1", model_names=["bench"])
project = Project.objects.create(owner=user, name="bench", prompt="bench", status="running")
print("TOKEN=" + issue_gateway_token(project))
"""


def start_doce(data_dir: Path, model_port: int) -> tuple[subprocess.Popen, int, str]:
    port, gateway_port = free_port(), free_port()
    env = {
        **os.environ,
        "DOCE_DATA_DIR": str(data_dir),
        "DOCE_PORT": str(port),
        "DOCE_GATEWAY_PORT": str(gateway_port),
        "DOCE_LOG_LEVEL": "WARNING",
        "DOCE_LOG_FORMAT": "json",
    }
    env.pop("DATABASE_URL", None)
    manage = [PYTHON, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    done = subprocess.run(
        [*manage, "shell", "-c", SETUP.format(model_port=model_port)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    token = next(line[6:] for line in done.stdout.splitlines() if line.startswith("TOKEN="))
    web = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "doce.webserver",
            "-v",
            "0",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "-e",
            f"tcp:port={gateway_port}:interface=127.0.0.1",
            "doce.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", gateway_port), timeout=1).close()
            return web, gateway_port, token
        except OSError:
            time.sleep(0.2)
    raise SystemExit("doce's gateway listener did not start")


# --- measurements ------------------------------------------------------------------------------


def _body(chunks: int, delay_ms: float = 0) -> dict:
    return {
        "model": "bench",
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
        "bench_chunks": chunks,
        "bench_delay_ms": delay_ms,
    }


async def ttfb(client: httpx.AsyncClient, url: str, headers: dict) -> float:
    started = time.perf_counter()
    first = None
    async with client.stream("POST", url, json=_body(5), headers=headers) as response:
        async for _ in response.aiter_raw():
            if first is None:
                first = time.perf_counter() - started
    assert response.status_code == 200 and first is not None, response.status_code
    return first * 1000


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(model_port: int, gateway_port: int, token: str, quick: bool) -> dict:
    direct_url = f"http://127.0.0.1:{model_port}/v1/chat/completions"
    gw_url = f"http://127.0.0.1:{gateway_port}/gw/local/v1/chat/completions"
    auth = {"authorization": f"Bearer {token}"}
    requests = 50 if quick else 200
    direct: list[float] = []
    through: list[float] = []
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        for _ in range(5):  # warm-up (connection pools, first DB queries)
            await ttfb(client, gw_url, auth)
        for _ in range(requests):
            direct.append(await ttfb(client, direct_url, {}))
            through.append(await ttfb(client, gw_url, auth))

        chunks = 5_000 if quick else 20_000
        received = 0
        async with client.stream("POST", gw_url, json=_body(chunks), headers=auth) as response:
            pending = b""
            first_at = None
            async for data in response.aiter_raw():
                if first_at is None:
                    first_at = time.perf_counter()
                pending += data
                received += pending.count(b"\n\n")
                pending = pending[pending.rfind(b"\n\n") + 2 :] if b"\n\n" in pending else pending
            ended = time.perf_counter()
        stream_s = ended - (first_at or ended)

        streams = 50
        errors = 0

        async def one() -> None:
            nonlocal errors
            try:
                async with client.stream(
                    "POST", gw_url, json=_body(100, 10), headers=auth
                ) as response:
                    body = b"".join([part async for part in response.aiter_raw()])
                if response.status_code != 200 or b"[DONE]" not in body:
                    errors += 1
            except httpx.HTTPError:
                errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(streams)))
        wall = time.perf_counter() - started
    return {
        "ttfb_ms": {
            "requests_each": requests,
            "direct_p50": round(pct(direct, 0.5), 2),
            "direct_p99": round(pct(direct, 0.99), 2),
            "gateway_p50": round(pct(through, 0.5), 2),
            "gateway_p99": round(pct(through, 0.99), 2),
            "added_p50_ms": round(pct(through, 0.5) - pct(direct, 0.5), 2),
            "added_p99_ms": round(pct(through, 0.99) - pct(direct, 0.99), 2),
        },
        "stream": {
            "chunks": received,
            "seconds": round(stream_s, 3),
            "chunks_per_s": round(received / stream_s) if stream_s else None,
        },
        "concurrent": {"streams": streams, "errors": errors, "wall_s": round(wall, 2)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    model_port = free_port()
    start_model_server(model_port)
    with tempfile.TemporaryDirectory(prefix="doce-bench-gw-") as tmp:
        web, gateway_port, token = start_doce(Path(tmp), model_port)
        try:
            result = asyncio.run(measure(model_port, gateway_port, token, args.quick))
        finally:
            os.killpg(web.pid, signal.SIGTERM)
            web.wait(timeout=30)
    result["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
