#!/usr/bin/env python
"""Benchmark: what the edge (Caddy in front of previews) costs and how it behaves on reloads.

    .venv/bin/python benchmarks/edge.py [--quick]

Prints one JSON object:

    {"added_p50_ms": …, "added_p99_ms": …, "route_change_ms": {…}, "reload_failures": …, …}

- latency: requests to one preview at a fixed rate, alternating between the container's
  loopback port ("direct") and the edge (Host `p-<id>.localhost`, with the owner's preview
  cookie, so every request goes through the `forward_auth` check), in the same run;
  `added_*` is edge minus direct at p50 and p99 (ms).
- route_change_ms: from the status write that routes a preview (which syncs the edge after
  its commit) until the new route answers 200 through the edge; median and max of 20.
- reload: requests through the edge from 4 keep-alive clients at a fixed rate while the
  configuration is reloaded 100 times (each reload really changes it: a second preview is
  routed and unrouted); `reload_failures` counts transport errors and non-200 answers.

Runs `manage.py serve` (daphne + Caddy, no worker) in a throwaway data directory with one
container of the preview image running a small Node HTTP server. The machine may be shared:
read the figures with the `load` printed next to them. --quick sends 2,000 latency requests
and 5,000 reload-phase requests; without it 5,000 and 10,000.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ECHO_SERVER = (
    "require('http').createServer((q,s)=>{s.setHeader('content-type','text/plain');"
    "s.end('ok '+q.url)}).listen(4321,'0.0.0.0')"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def wait_until(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: S110 (not up yet)
            pass
        time.sleep(0.05)
    raise RuntimeError("timed out")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Fewer requests.")
    parser.add_argument("--keep-data", action="store_true", help="Keep the data directory.")
    args = parser.parse_args()
    latency_requests, reload_requests = (2000, 5000) if args.quick else (5000, 10000)

    data_dir = Path(tempfile.mkdtemp(prefix="doce-bench-edge-"))
    port, web_port = free_port(), free_port()
    os.environ.update(
        {
            "DOCE_DATA_DIR": str(data_dir),
            "DOCE_PORT": str(port),
            "DOCE_WEB_PORT": str(web_port),
            "DOCE_EMBEDDED_WORKER": "false",
            "DOCE_LOG_LEVEL": "WARNING",
        }
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "doce.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    container = f"doce_benchedge_{secrets.token_hex(4)}"
    preview_port = free_port()
    subprocess.run(
        ["docker", "run", "-d", "--rm", "--name", container,
         "-p", f"127.0.0.1:{preview_port}:4321", "--entrypoint", "node",
         settings.DOCE_PREVIEW_IMAGE, "-e", ECHO_SERVER],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    serve = subprocess.Popen(
        [sys.executable, "manage.py", "serve"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        result = run(port, preview_port, latency_requests, reload_requests)
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            serve.kill()
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=60)
        if not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
    result["load"] = [round(x, 2) for x in os.getloadavg()]
    result["cpus"] = os.cpu_count()
    print(json.dumps(result, indent=2))
    return 0


def run(port: int, preview_port: int, latency_requests: int, reload_requests: int) -> dict:
    import httpx
    from django.contrib.auth import get_user_model

    from projects import preview_access
    from projects.models import Project
    from projects.services import set_status

    owner = get_user_model().objects.create_user("bench", password=secrets.token_hex(8))
    project = Project.objects.create(owner=owner, name="bench", prompt="p")
    Project.objects.filter(pk=project.pk).update(preview_port=preview_port)
    project.refresh_from_db()
    edge_url = f"http://127.0.0.1:{port}"
    host = f"p-{project.id}.localhost:{port}"
    wait_until(lambda: httpx.get(f"{edge_url}/healthz", headers={"Host": f"localhost:{port}"},
                                 timeout=1).status_code in (200, 503), 120)  # fmt: skip
    set_status(project, Project.Status.STARTING)
    set_status(project, Project.Status.RUNNING)
    token = preview_access.entry_token(owner.pk, project.id)
    entered = httpx.get(f"{edge_url}/.doce/enter?token={token}", headers={"Host": host})
    assert entered.status_code == 303, entered.status_code
    cookie = entered.headers["set-cookie"].split(";", 1)[0]
    headers = {"Host": host, "Cookie": cookie}

    # --- added latency, same run, alternating, fixed rate ------------------------------
    rate = 400.0  # requests per second, both targets together
    direct_ms: list[float] = []
    edge_ms: list[float] = []
    with httpx.Client(timeout=10) as direct, httpx.Client(timeout=10) as edge:
        for _ in range(50):  # warm both paths (connections, caches)
            direct.get(f"http://127.0.0.1:{preview_port}/")
            edge.get(f"{edge_url}/", headers=headers)
        start = time.perf_counter()
        for i in range(latency_requests):
            due = start + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            t0 = time.perf_counter()
            if i % 2:
                response = edge.get(f"{edge_url}/x", headers=headers)
                edge_ms.append((time.perf_counter() - t0) * 1000)
            else:
                response = direct.get(f"http://127.0.0.1:{preview_port}/x")
                direct_ms.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, response.status_code

    # --- route change ------------------------------------------------------------------
    changes: list[float] = []
    with httpx.Client(timeout=5) as client:
        for _ in range(20):
            set_status(project, Project.Status.STOPPING)
            assert client.get(f"{edge_url}/", headers=headers).status_code == 404
            t0 = time.perf_counter()
            set_status(project, Project.Status.STARTING)
            while client.get(f"{edge_url}/", headers=headers).status_code != 200:
                pass
            changes.append((time.perf_counter() - t0) * 1000)

    # --- failures across 100 reloads ------------------------------------------------------
    other = Project.objects.create(owner=owner, name="other", prompt="p")
    Project.objects.filter(pk=other.pk).update(preview_port=free_port())
    other.refresh_from_db()
    failures: list[str] = []
    sent = [0]
    lock = threading.Lock()
    clients = 4
    per_client = reload_requests // clients
    client_rate = 100.0  # per client: 400 requests per second in all

    def load() -> None:
        with httpx.Client(timeout=10) as client:
            begin = time.perf_counter()
            for i in range(per_client):
                due = begin + i / client_rate
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                try:
                    code = client.get(f"{edge_url}/r", headers=headers).status_code
                    problem = None if code == 200 else f"status {code}"
                except httpx.HTTPError as exc:
                    problem = type(exc).__name__
                with lock:
                    sent[0] += 1
                    if problem:
                        failures.append(problem)

    threads = [threading.Thread(target=load) for _ in range(clients)]
    for thread in threads:
        thread.start()
    reloads = 0
    spacing = (per_client / client_rate) / 110  # spread 100 reloads over the load
    time.sleep(spacing)
    while reloads < 100:
        status = Project.Status.STARTING if reloads % 2 == 0 else Project.Status.STOPPING
        set_status(other, status)  # each write re-renders and POST /loads a changed config
        reloads += 1
        time.sleep(spacing)
    for thread in threads:
        thread.join()

    return {
        "latency_requests": latency_requests,
        "rate_per_s": rate,
        "direct_p50_ms": round(percentile(direct_ms, 0.5), 3),
        "direct_p99_ms": round(percentile(direct_ms, 0.99), 3),
        "edge_p50_ms": round(percentile(edge_ms, 0.5), 3),
        "edge_p99_ms": round(percentile(edge_ms, 0.99), 3),
        "added_p50_ms": round(percentile(edge_ms, 0.5) - percentile(direct_ms, 0.5), 3),
        "added_p99_ms": round(percentile(edge_ms, 0.99) - percentile(direct_ms, 0.99), 3),
        "route_change_ms": {
            "median": round(statistics.median(changes), 1),
            "max": round(max(changes), 1),
            "samples": len(changes),
        },
        "reloads": reloads,
        "reload_requests": sent[0],
        "reload_failures": len(failures),
        "reload_failure_kinds": sorted(set(failures)),
    }


if __name__ == "__main__":
    sys.exit(main())
