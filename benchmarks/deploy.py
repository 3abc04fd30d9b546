#!/usr/bin/env python
"""Benchmark: production deploys and rollbacks, and what a visitor sees during them.

    .venv/bin/python benchmarks/deploy.py [--quick]

Prints one JSON object:

    {"static": {"deploy_s": {…}, "rollback_s": {…}, "switch_ms": {…}, "requests": …,
                "failed": …, "latency_ms": {…}, "switch_latency_ms": {…}},
     "server": {…}, "load": […], "cpus": …}

- deploy_s: from `POST /api/projects/{id}/deployments` until the new release answers
  through the edge (build in the one-off builder, hash, store, switch), per deploy; each
  deploy changes the page's heading, which is how the answer is recognised.
- rollback_s: from `POST /api/projects/{id}/releases/{release}/activate` (the previous
  release) until it answers through the edge, asked once the last switch's drain is over.
  For a server release this includes starting its stopped container again and the
  readiness probe (once a second).
- switch_ms: the `production.promote` job's run time (record the release as live, one edge
  config load, the `current` symlink).
- requests/failed: a visitor requesting the site through the edge at a steady 50 req/s
  (one keep-alive client, every 20 ms) for the whole series; failed = transport errors and
  answers other than 200 once the site first answered (`failures`: when and what, seconds
  from the start of the series, next to `switches_at_s`).
- latency_ms: that visitor's p50/p99 over the whole series; switch_latency_ms: only the
  requests sent within 1 s of a switch (from 1 s before the promote job starts to 1 s after
  it ends).

Setup (not timed): a throwaway data directory and SQLite database, images built offline and
the template prewarmed when missing (`prepare_runtime --offline`), doce started as
`manage.py serve` (edge, web, embedded worker; default settings, so a 10 s drain before an
old server release's container stops), an admin with an API token, and two projects
scaffolded from the template: one static, one whose build also writes
`dist/server/entry.mjs` (a small Node server answering with the built page: a server release
without installing an adapter). The machine may be shared: read the figures with the `load`
printed next to them. 3 deploys and 3 rollbacks of each kind; --quick: 2 and 2.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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

import httpx

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 300
# An Astro integration that writes a Node server next to the static build (see docstring).
SERVER_CONFIG = """
import { defineConfig } from "astro/config";
import { mkdirSync, writeFileSync } from "node:fs";
const entry = `
import http from "node:http";
import { readFileSync } from "node:fs";
const page = readFileSync(new URL("../index.html", import.meta.url));
http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  res.end(page);
}).listen(Number(process.env.PORT), process.env.HOST);
`;
export default defineConfig({
  integrations: [{
    name: "bench-server-entry",
    hooks: {
      "astro:build:done": ({ dir }) => {
        const folder = new URL("./server/", dir);
        mkdirSync(folder, { recursive: true });
        writeFileSync(new URL("./entry.mjs", folder), entry);
      },
    },
  }],
});
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values: list[float], digits: int = 2) -> dict:
    return {
        "median": round(statistics.median(values), digits),
        "max": round(max(values), digits),
        "samples": [round(v, digits) for v in values],
    }


def wait_until(check, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    raise TimeoutError(f"not within {timeout} s")


class Visitor:
    """GET the site through the edge every 20 ms from a thread; keeps (wall-clock time,
    status, heading, ms) per request."""

    def __init__(self, url: str, host: str) -> None:
        self.url, self.host = url, host
        self.samples: list[tuple[float, int, str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Visitor:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with httpx.Client(timeout=5, headers={"Host": self.host}) as client:
            due = time.monotonic()
            while not self._stop.is_set():
                sent, t0 = time.time(), time.perf_counter()
                try:
                    response = client.get(self.url)
                    status, heading = response.status_code, heading_of(response.text)
                except httpx.HTTPError as exc:
                    status, heading = 0, type(exc).__name__
                self.samples.append((sent, status, heading, (time.perf_counter() - t0) * 1000))
                due += 0.02
                self._stop.wait(max(0.0, due - time.monotonic()))

    def first_with(self, heading: str, after: float) -> float:
        """Wall-clock time of the first request sent after `after` that got `heading`."""

        def found():
            return next((s[0] for s in self.samples if s[0] >= after and s[2] == heading), None)

        return wait_until(found, TIMEOUT_S)


def heading_of(page: str) -> str:
    found = re.search(r"<h1[^>]*>([^<]*)</h1>", page)
    return found.group(1).strip() if found else ""


def write_heading(site: Path, heading: str) -> None:
    page = site / "src" / "pages" / "index.astro"
    text = page.read_text()
    start = text.index("<h1>") + 4
    page.write_text(text[:start] + heading + text[text.index("</h1>") :])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 deploys and 2 rollbacks.")
    parser.add_argument("--keep-data", action="store_true", help="Keep the data directory.")
    args = parser.parse_args()
    rounds = 2 if args.quick else 3

    data_dir = Path(tempfile.mkdtemp(prefix="doce-bench-deploy-"))
    port = free_port()
    os.environ.update(
        {
            "DOCE_DATA_DIR": str(data_dir),
            "DOCE_PORT": str(port),
            "DOCE_WEB_PORT": str(free_port()),
            "DOCE_LOG_LEVEL": "WARNING",
        }
    )
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "doce.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("prepare_runtime", "--offline")
    serve = subprocess.Popen(
        [sys.executable, "manage.py", "serve"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    projects: list[str] = []
    try:
        result = run(port, rounds, projects)
    finally:
        from productions.jobs import remove_production_containers

        for project_id in projects:
            remove_production_containers(project_id)
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
        if not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
    result["load"] = [round(x, 2) for x in os.getloadavg()]
    result["cpus"] = os.cpu_count()
    print(json.dumps(result, indent=2))
    return 0


def run(port: int, rounds: int, made: list[str]) -> dict:
    from django.contrib.auth import get_user_model

    from accounts.services import create_api_token
    from projects.models import Project
    from projects.scaffold import scaffold_site

    owner = get_user_model().objects.create_superuser("bench", "", "bench-pass-123x")
    token = create_api_token(owner, "bench")[1]
    edge = f"http://127.0.0.1:{port}"
    api = httpx.Client(
        base_url=edge,
        headers={"Host": f"localhost:{port}", "Authorization": f"Bearer {token}"},
        timeout=30,
    )
    wait_until(lambda: api.get("/healthz").status_code in (200, 503), 120)
    results = {}
    for kind in ("static", "server"):
        project = Project.objects.create(owner=owner, name=f"bench {kind}", prompt="bench")
        made.append(project.id)
        scaffold_site(project)
        if kind == "server":
            (project.site_dir / "astro.config.mjs").write_text(SERVER_CONFIG)
        results[kind] = series(api, edge, project, rounds)
    api.close()
    return results


def series(api: httpx.Client, edge: str, project, rounds: int) -> dict:
    """Deploy `rounds` changed headings (after a first deploy that puts the site online),
    then roll back and forth between the two newest releases `rounds` times, with a
    visitor on the site throughout."""
    from jobqueue.models import Job

    base = f"/api/projects/{project.id}"
    deploys: list[float] = []  # the first deploy (nothing live yet) is `first_deploy_s`
    rollbacks: list[float] = []
    headings: dict[str, str] = {}  # release id -> heading
    begun = time.time()
    with Visitor(f"{edge}/", f"s-{project.id}.localhost") as visitor:
        for index in range(rounds + 1):
            heading = f"Benchmark release {index}"
            write_heading(project.site_dir, heading)
            asked = time.time()
            api.post(f"{base}/deployments").raise_for_status()
            answered = visitor.first_with(heading, asked)
            wait_until(lambda: api.get(f"{base}/production").json()["status"] == "live", 60)
            live = api.get(f"{base}/production").json()["live_release"]
            headings[live] = heading
            deploys.append(answered - asked)
        for _ in range(rounds):
            listed = api.get(f"{base}/releases").json()
            # Back and forth between the two newest releases (older ones may be pruned).
            target = listed[1] if listed[0]["live"] else listed[0]
            # After the drain: the other release's container (server kind) is stopped, so a
            # rollback starts it again, as it would long after a deploy.
            wait_until(lambda: not retiring(project.id), 60, interval=0.2)
            asked = time.time()
            api.post(f"{base}/releases/{target['id']}/activate").raise_for_status()
            rollbacks.append(visitor.first_with(headings[target["id"]], asked) - asked)
            wait_until(lambda: api.get(f"{base}/production").json()["status"] == "live", 60)
        time.sleep(1)
    promotes = sorted(
        (job.started_at.timestamp(), job.finished_at.timestamp())
        for job in Job.objects.filter(
            type="production.promote", payload__project_id=project.id, state="succeeded"
        )
        if job.started_at.timestamp() >= begun
    )
    samples = visitor.samples
    online = first_ok(samples)
    failed = [s for s in samples[online:] if s[1] != 200]
    near = [s for s in samples if any(start - 1 <= s[0] <= end + 1 for start, end in promotes[1:])]
    latencies = [s[3] for s in samples if s[1]]
    switch_latencies = [s[3] for s in near if s[1]]
    return {
        "first_deploy_s": round(deploys[0], 2),
        "deploy_s": summary(deploys[1:]),
        "rollback_s": summary(rollbacks),
        "switch_ms": summary([(end - start) * 1000 for start, end in promotes[1:]], 1),
        "requests": len(samples),
        "failed": len(failed),
        # When (seconds from the start of the series) and what: status 0 = transport error.
        "failures": [
            {"at_s": round(s[0] - begun, 2), "status": s[1], "error": s[2] if not s[1] else ""}
            for s in failed[:10]
        ],
        "switches_at_s": [round(start - begun, 2) for start, _ in promotes],
        "latency_ms": {
            "p50": round(percentile(latencies, 0.5), 2),
            "p99": round(percentile(latencies, 0.99), 2),
        },
        "switch_latency_ms": {
            "requests": len(near),
            "p50": round(percentile(switch_latencies, 0.5), 2),
            "p99": round(percentile(switch_latencies, 0.99), 2),
        },
    }


def retiring(project_id: str) -> bool:
    """True while a `production.retire` job of the project is queued or running."""
    from jobqueue.models import Job

    return Job.objects.filter(
        type="production.retire", payload__project_id=project_id, state__in=["queued", "running"]
    ).exists()


def first_ok(samples: list) -> int:
    """Index of the first 200: before the first deploy goes live the site is not served
    (404), which is not a failure of a switch."""
    return next((i for i, s in enumerate(samples) if s[1] == 200), len(samples))


if __name__ == "__main__":
    sys.exit(main())
