#!/usr/bin/env python
"""Benchmark: how long a project stack takes from `compose up` to both services ready.

    .venv/bin/python benchmarks/stack_start.py [--quick] [--runs N] [--keep-data]

Prints one JSON object:

    {"cold_start_s": …, "warm_start_s": …, "idle_stack_mem_mib": …, …}

- cold_start_s: median over N new projects (scaffolded from the template with prewarmed
  dependencies, never started before) of the time from `stack_up()` to the preview giving
  an HTTP answer and the agent answering `GET /doc` 200;
- warm_start_s: the same projects started again after `stack_stop()`;
- idle_stack_mem_mib: median memory (usage minus page cache, both containers) of a ready
  stack left idle for 5 s; idle_preview_mem_mib / idle_agent_mem_mib: each service's part;
- idle_preview_only_mem_mib: the same stack after its idle agent was stopped (lean idle:
  `compose stop agent`, the preview keeps running);
- resume_preview_s: a stopped project started again, until its preview answers (what a
  user waits for; the agent follows, `warm_agent_s`);
- disk_per_project_mb: what a new project's folder adds on disk (`du` of the shared
  dependency store and the project together, minus the store: hard links count once);
- *_preview_s / *_agent_s: the per-service medians, and the raw samples.

Runs in a throwaway data directory (a fresh SQLite database) with the configured images,
cache and Engine; builds the images offline and prewarms the template first when needed
(not timed). Every stack it starts is removed at the end. N is 5 (1 with --quick).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLL_S = 0.05
READY_TIMEOUT_S = 120


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="One run instead of five.")
    parser.add_argument("--runs", type=int, default=None, help="Number of projects.")
    parser.add_argument("--keep-data", action="store_true", help="Keep the data directory.")
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 5)

    data_dir = Path(tempfile.mkdtemp(prefix="doce-bench-"))
    os.environ["DOCE_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DOCE_LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "doce.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    try:
        result = run(runs)
    finally:
        if not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


def run(runs: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from doce.docker.images import build_images, images_present
    from projects.models import Project
    from projects.scaffold import prewarm

    call_command("migrate", verbosity=0)
    if not images_present():
        build_images(offline=True, say=lambda line: print(line, file=sys.stderr))
    prewarm()
    owner = get_user_model().objects.create_user("bench", "bench@example.org", "bench-pass-1")
    projects = [
        Project.objects.create(owner=owner, name=f"bench {i}", prompt="benchmark")
        for i in range(runs)
    ]
    cold, warm, memory, lean, disk = [], [], [], [], []
    try:
        for project in projects:
            prepare(project)
            disk.append(disk_mb(project))
            cold.append(timed_start(project))
            memory.append(idle_memory_mib(project))
            stop_agent(project)
            lean.append(idle_memory_mib(project)["total"])
            stop(project)
            warm.append(timed_start(project))
    finally:
        for project in projects:
            teardown(project)
    return {
        "cold_start_s": median(cold, "total"),
        "warm_start_s": median(warm, "total"),
        "idle_stack_mem_mib": round(statistics.median(m["total"] for m in memory), 1),
        "idle_preview_mem_mib": round(statistics.median(m["preview"] for m in memory), 1),
        "idle_agent_mem_mib": round(statistics.median(m["agent"] for m in memory), 1),
        "idle_preview_only_mem_mib": round(statistics.median(lean), 1),
        "resume_preview_s": median(warm, "preview"),
        "disk_per_project_mb": round(statistics.median(disk), 1),
        "cold_preview_s": median(cold, "preview"),
        "cold_agent_s": median(cold, "agent"),
        "warm_preview_s": median(warm, "preview"),
        "warm_agent_s": median(warm, "agent"),
        "runs": runs,
        "samples": {"cold": cold, "warm": warm, "idle_mem_mib": memory, "disk_mb": disk},
    }


def prepare(project) -> None:
    from projects.ports import ensure_ports
    from projects.runtime import render_stack
    from projects.scaffold import scaffold_site

    scaffold_site(project)
    ensure_ports(project)
    render_stack(project)


def timed_start(project) -> dict:
    """Seconds from `stack_up()` to each service being ready (each probed in its own thread,
    so a slow answer from one doesn't delay noticing the other)."""
    from django.conf import settings

    from doce.docker import health
    from projects.runtime import stack_up

    host = health.probe_host("127.0.0.1")
    probes = {
        "preview": lambda: health.preview_ready(host, project.preview_port, timeout=1.0),
        "agent": lambda: health.agent_ready(
            settings.DOCE_AGENT_HOST, project.agent_port, project.agent_password, timeout=1.0
        ),
    }
    started = time.monotonic()
    stack_up(project)
    up_done = time.monotonic() - started
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(poll, probe, started) for name, probe in probes.items()}
        times = {name: future.result() for name, future in futures.items()}
    return {
        "up": round(up_done, 2),
        "preview": round(times["preview"], 2),
        "agent": round(times["agent"], 2),
        "total": round(max(times.values()), 2),
    }


def poll(probe, started: float) -> float:
    while time.monotonic() - started < READY_TIMEOUT_S:
        if probe():
            return time.monotonic() - started
        time.sleep(POLL_S)
    raise SystemExit(f"not ready after {READY_TIMEOUT_S}s")


def idle_memory_mib(project) -> dict:
    """MiB per running service after 5 s idle (usage minus page cache), and their total."""
    from doce.docker.engine import engine_client
    from doce.docker.stacks import stack_status

    time.sleep(5)
    client = engine_client()
    found = {"preview": 0.0, "agent": 0.0}
    try:
        for service, state in stack_status(project.stack_name).containers.items():
            if not state.running:
                continue
            stats = client.containers.get(state.id).stats(stream=False)
            memory = stats.get("memory_stats", {})
            detail = memory.get("stats", {})
            cache = detail.get("total_inactive_file", detail.get("cache", 0))
            found[service] = round((memory.get("usage", 0) - cache) / (1024 * 1024), 1)
    finally:
        client.close()
    return {**found, "total": round(sum(found.values()), 1)}


def disk_mb(project) -> float:
    """MB a new project adds: `du` counts a hard-linked file once, for the store."""
    import subprocess

    from projects.scaffold import prewarm_dir, template_lock_hash

    store = prewarm_dir(template_lock_hash())
    out = subprocess.run(
        ["du", "-sk", str(store), str(project.root_dir)], capture_output=True, text=True
    ).stdout.splitlines()
    return round(int(out[1].split()[0]) / 1024, 1)


def stop_agent(project) -> None:
    from projects.runtime import stop_service

    stop_service(project, "agent")


def stop(project) -> None:
    from projects.runtime import stack_stop

    stack_stop(project)


def teardown(project) -> None:
    from projects.runtime import stack_down

    try:
        stack_down(project, delete=True)
    except Exception as exc:  # keep tearing down the others
        print(f"teardown of {project.id} failed: {exc}", file=sys.stderr)


def median(samples: list[dict], key: str) -> float:
    return round(statistics.median(sample[key] for sample in samples), 2)


if __name__ == "__main__":
    raise SystemExit(main())
