#!/usr/bin/env python
"""Benchmark: web throughput, one web process vs two behind the edge, in the same run.

    .venv/bin/python benchmarks/web.py [--quick]

Prints one JSON object:

    {"load_before": [...], "load_after": [...], "projects": 200, "clients": 50,
     "one_web": {"dashboard": {"rps", "p50_ms", "p99_ms", "errors",
                               "cpu_ms_per_request": {...}, "machine_busy"}, "api_list": {...}},
     "two_webs": {...}, "speedup": {"dashboard": …, "api_list": …},
     "render_one_at_a_time_ms": {"p50", "mean", "p99"}}

Each configuration is doce scaled out as `docs/scaling.md` describes (`tests/e2e/scaled.py`:
a fresh Postgres database, the Redis channel layer, `manage.py serve` with
DOCE_WEB_REPLICAS=1 or 2, no worker) with one user owning 200 projects (stopped: the pages
and the list render them all, no container runs). 50 concurrent keep-alive clients request
the dashboard (`/`, signed in) and then the API's project list (`/api/projects`, with a
token) through the edge; `rps` = requests / wall time, latencies per request. Then, on one
web process, the dashboard is rendered one request at a time (the per-render cost).

The clients run in this process, on the same cores as the servers: on a 2-core machine they
take CPU from them, so the figures are lower bounds. Read them with the load printed next to
them. Each concurrent run also gives `cpu_ms_per_request`: CPU time (user + system, from
/proc) per request of the web processes, the edge, the deployment's Postgres backends (those
alive at the end of the run: with the connection pool they live through it), this process
(the clients) and `machine` (all cores, everything running, other work included), and
`machine_busy` (the share of the cores busy): where the 2 cores went, and so what bounds
req/s. --quick: 300 requests per endpoint and configuration, 50 sequential renders;
without it 1,000 and 200.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "doce.settings")

PROJECTS = 200
CLIENTS = 50
SEED_CODE = """
import os
from django.contrib.auth import get_user_model
from projects.models import Project
alice = get_user_model().objects.get(username="alice")
Project.objects.bulk_create(
    Project(owner=alice, name=f"Site {i}", prompt=f"A site number {i}", status="stopped")
    for i in range(int(os.environ["SEED_PROJECTS"]))
)
"""


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def seed(deployment) -> None:
    from tests.e2e.scaled import MANAGE

    subprocess.run(
        [*MANAGE, "shell", "-c", SEED_CODE],
        cwd=ROOT,
        env={**deployment.env, "SEED_PROJECTS": str(PROJECTS)},
        check=True,
        timeout=300,
    )


def _process_cpu_s(pid: int) -> float:
    """utime + stime of `pid` in seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of all cores since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK"), sum(values) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds spent by each part of a deployment between `start()` and `stop()`."""

    def __init__(self, deployment) -> None:
        self.deployment = deployment
        self.webs = [deployment.web_pid(i) for i in range(len(deployment.web_ports))]
        self.edge = [pid for pid, argv in deployment.children() if "caddy" in argv[0]]

    def _backends(self) -> list[int]:
        rows = self.deployment.sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            self.deployment.database,
        )
        return [row[0] for row in rows]

    def _sample(self) -> dict:
        backends = self._backends()
        return {
            "web": {pid: _process_cpu_s(pid) for pid in self.webs},
            "edge": {pid: _process_cpu_s(pid) for pid in self.edge},
            "postgres": {pid: _process_cpu_s(pid) for pid in backends},
            "clients": {0: sum(os.times()[:2])},
        }

    def start(self) -> None:
        self.before = self._sample()
        self.machine_before = _machine_cpu_s()

    def stop(self, requests: int) -> dict:
        machine = _machine_cpu_s()
        after = self._sample()
        per_request = {
            part: round(
                sum(v - self.before[part].get(pid, 0.0) for pid, v in after[part].items())
                / requests
                * 1000,
                2,
            )
            for part in after
        }
        busy = machine[0] - self.machine_before[0]
        per_request["machine"] = round(busy / requests * 1000, 2)
        return {
            "cpu_ms_per_request": per_request,
            "machine_busy": round(busy / (machine[1] - self.machine_before[1]), 2),
        }


async def hammer(deployment, path: str, headers: dict, total: int) -> dict:
    """`total` GETs of `path` from CLIENTS concurrent keep-alive clients."""
    latencies: list[float] = []
    errors = 0
    remaining = total

    async def client() -> None:
        nonlocal remaining, errors
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(
            base_url=deployment.url, headers=headers, timeout=60, limits=limits
        ) as http:
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                try:
                    answer = await http.get(path)
                    if answer.status_code != 200:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - started)

    meter = CpuMeter(deployment)
    meter.start()
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    wall = time.perf_counter() - started
    return {
        "rps": round(len(latencies) / wall, 1),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "errors": errors,
        **meter.stop(len(latencies)),
    }


def measure(deployment, total: int) -> dict:
    pages = {"Cookie": deployment.cookie}
    api = {"Authorization": f"Bearer {deployment.token}"}
    # Warm up: every web process loads its templates and connections.
    with httpx.Client(base_url=deployment.url, timeout=60) as http:
        for _ in range(10):
            http.get("/", headers=pages)
            http.get("/api/projects", headers=api)
    return {
        "dashboard": asyncio.run(hammer(deployment, "/", pages, total)),
        "api_list": asyncio.run(hammer(deployment, "/api/projects", api, total)),
    }


def one_at_a_time(deployment, renders: int) -> dict:
    """Dashboard renders one after another, straight to the web process (no edge)."""
    samples = []
    with httpx.Client(
        base_url=f"http://127.0.0.1:{deployment.web_ports[0]}",
        headers={"Cookie": deployment.cookie, "Host": f"localhost:{deployment.port}"},
        timeout=60,
    ) as http:
        for _ in range(5):
            http.get("/")
        for _ in range(renders):
            started = time.perf_counter()
            answer = http.get("/")
            samples.append(time.perf_counter() - started)
            assert answer.status_code == 200, answer.status_code
    return {
        "p50": round(percentile(samples, 0.5) * 1000, 1),
        "mean": round(statistics.mean(samples) * 1000, 1),
        "p99": round(percentile(samples, 0.99) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    total = 300 if args.quick else 1000
    renders = 50 if args.quick else 200

    import django

    django.setup()
    from tests.e2e.scaled import start_scaled

    result: dict = {"load_before": [round(x, 2) for x in os.getloadavg()]}
    result.update({"projects": PROJECTS, "clients": CLIENTS, "requests": total})
    for webs, key in ((1, "one_web"), (2, "two_webs")):
        with (
            tempfile.TemporaryDirectory(prefix="doce-bench-web-") as data,
            start_scaled(Path(data), webs=webs, workers=0, prepare_runtime=False) as d,
        ):
            seed(d)
            result[key] = measure(d, total)
            if webs == 1:
                result["render_one_at_a_time_ms"] = one_at_a_time(d, renders)
    result["speedup"] = {
        name: round(result["two_webs"][name]["rps"] / result["one_web"][name]["rps"], 2)
        for name in ("dashboard", "api_list")
    }
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
