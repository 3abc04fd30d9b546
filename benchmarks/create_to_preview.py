#!/usr/bin/env python
"""Benchmark: from `POST /api/projects` to the new project's preview answering HTTP.

    .venv/bin/python benchmarks/create_to_preview.py [--quick] [--runs N] [--pool both|on|off]

Prints one JSON object: `{"without_pool": R, "with_pool": R, "load_1min": [before, after]}`
(a mode left out by `--pool` is null), each R in seconds: `{"median_s", "p90_s", "runs",
"samples_s", "first_page_median_s", "first_page_samples_s", "steps"}`. `first_page_*` is
create → the agent's first written page visible in the preview (the scripted model writes
the home page; timed until the preview stops serving the template's page). `steps` says
where a create's time went, per job type of its chain (medians over the runs, seconds):
`wait_s` from the job being due to a worker starting it (the last start, for a job that
rescheduled itself), `run_s` from that start to its end.

With the pool (`DOCE_WARM_POOL_SIZE=1`), each run starts once the pool holds a ready warm
stack again (the refill of the previous run's claim is not timed): the figure is what the
next user gets from a pool that keeps up.

What is timed is the whole create chain as a user triggers it through the API: the project
row and jobs, scaffolding (with the prewarmed template dependencies), port allocation, stack
rendering, `compose up`, readiness, until the preview answers through the edge (the owner's
entry handshake at `preview_url`, then the site answering without a server error). The
agent then goes on building the site from the prompt (driven by the scripted model), but
that is not part of the figure.

Setup (not timed): a throwaway data directory per mode, doce started as `manage.py serve`
(web and worker, SQLite), the scripted model on this host, an admin with an OpenAI-compatible
provider pointing at it and an API token. Images are built offline and the template is
prewarmed first when needed. Every project is deleted through the API afterwards. N is 5
(2 with --quick).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
READY_TIMEOUT_S = 180
POLL_S = 0.05


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code != 502:  # 502: the edge, daphne not up
                return
        except httpx.TransportError:
            pass
        time.sleep(POLL_S)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout


def make_user_with_provider(env: dict, model_url: str) -> str:
    """Create the admin, its scripted-model provider and an API token; return the token."""
    code = (
        "from django.contrib.auth.models import User\n"
        "from accounts.models import ProviderCredential\n"
        "from accounts.services import create_api_token\n"
        "u = User.objects.create_superuser('bench', '', 'bench-pass-123x')\n"
        "ProviderCredential.objects.create(user=u, kind='openai-compatible',"
        " provider_id='scripted',"
        f" base_url='{model_url}', model_names=['scripted'])\n"
        "print(create_api_token(u, 'bench')[1])\n"
    )
    return manage(env, "shell", "-c", code).strip().splitlines()[-1]


def _via_edge(url: str) -> tuple[str, dict]:
    # p-<id>.localhost resolves to loopback in browsers, not always in this process's
    # resolver: connect to the edge on loopback and name the host in the Host header.
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return f"{parts.scheme}://127.0.0.1:{parts.port}{path}", {"Host": parts.netloc}


def _enter(preview_url: str) -> tuple[str, dict] | None:
    url, headers = _via_edge(preview_url)
    try:
        answer = httpx.get(url, headers=headers, timeout=1, verify=False)  # noqa: S501
    except httpx.TransportError:
        return None
    if answer.status_code != 303:
        return None
    root, headers = _via_edge(preview_url.split("/.doce/", 1)[0] + "/")
    headers["Cookie"] = answer.headers["set-cookie"].split(";", 1)[0]
    return root, headers


def _site_answers(url: str, headers: dict) -> bool:
    try:
        return httpx.get(url, headers=headers, timeout=1, verify=False).status_code < 500  # noqa: S501
    except httpx.TransportError:
        return False


TEMPLATE_TITLE = "<title>A new site</title>"


def _agent_page_shows(url: str, headers: dict) -> bool:
    try:
        answer = httpx.get(url, headers=headers, timeout=2, verify=False)  # noqa: S501
    except httpx.TransportError:
        return False
    return answer.status_code == 200 and TEMPLATE_TITLE not in answer.text


def pool_ready(env: dict) -> bool:
    code = (
        "from projects.models import PoolEntry\n"
        "print(PoolEntry.objects.filter(state='ready').count())\n"
    )
    return manage(env, "shell", "-c", code).strip().splitlines()[-1] != "0"


def wait_pool(env: dict) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not pool_ready(env):
        if time.monotonic() > deadline:
            raise TimeoutError("the warm pool did not fill")
        time.sleep(1)


STEPS_CODE = """
import json, statistics
from jobqueue.models import Job
ids = json.loads({ids!r})
found = {{}}
for job in Job.objects.filter(serial_key__in=[f"project:{{i}}" for i in ids]):
    if job.started_at is None or job.finished_at is None:
        continue
    due = max(job.run_at, job.created_at)
    wait = max(0.0, (job.started_at - due).total_seconds())
    run = (job.finished_at - job.started_at).total_seconds()
    found.setdefault(job.type, []).append((wait, run))
print(json.dumps({{
    t: {{"wait_s": round(statistics.median(w for w, _ in v), 3),
        "run_s": round(statistics.median(r for _, r in v), 3), "jobs": len(v)}}
    for t, v in found.items()
}}))
"""


REMOVE_POOL_CODE = (
    "from projects import pool\n"
    "from projects.models import PoolEntry\n"
    "for entry in PoolEntry.objects.all():\n"
    "    pool.remove_entry(entry)\n"
)


def step_breakdown(env: dict, project_ids: list[str]) -> dict:
    """Median wait and run time per job type of these projects' chains (see the docstring)."""
    code = STEPS_CODE.format(ids=json.dumps(project_ids))
    return json.loads(manage(env, "shell", "-c", code).strip().splitlines()[-1])


def one_run(api: httpx.Client, index: int) -> tuple[float, float | None, str]:
    started = time.monotonic()
    response = api.post("/api/projects", json={"prompt": f"Benchmark site number {index}"})
    response.raise_for_status()
    project_id = response.json()["id"]
    deadline = started + READY_TIMEOUT_S
    cookie = None
    while time.monotonic() < deadline:
        # Through the edge: enter with a fresh single-use token (the owner's preview cookie),
        # then poll the site until its dev server answers (not the edge's 502).
        if cookie is None:
            preview = api.get(f"/api/projects/{project_id}").json()["preview_url"]
            if preview is not None:
                cookie = _enter(preview)
        if cookie is not None and _site_answers(*cookie):
            elapsed = time.monotonic() - started
            break
        time.sleep(POLL_S)
    else:
        raise TimeoutError(f"project {project_id}'s preview did not answer")
    page = None  # stays None when the agent's page did not show within READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if _agent_page_shows(*cookie):
            page = time.monotonic() - started
            break
        time.sleep(0.2)
    # Let the agent finish its turn before deleting, so runs do not overlap.
    while time.monotonic() < deadline:
        if api.get(f"/api/projects/{project_id}").json()["prompt_completed"]:
            break
        time.sleep(0.2)
    api.delete(f"/api/projects/{project_id}").raise_for_status()
    return elapsed, page, project_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="2 runs instead of 5")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--pool", choices=["both", "on", "off"], default="both")
    args = parser.parse_args()
    runs = args.runs or (2 if args.quick else 5)
    load_before = os.getloadavg()[0]
    results = {
        "without_pool": measure(runs, pool=0) if args.pool in ("both", "off") else None,
        "with_pool": measure(runs, pool=1) if args.pool in ("both", "on") else None,
    }
    print(json.dumps({**results, "load_1min": [round(load_before, 2), os.getloadavg()[0]]}))


def measure(runs: int, *, pool: int) -> dict:
    """Start doce with `DOCE_WARM_POOL_SIZE=pool` in a fresh data directory, time `runs`
    creates, stop it; returns the figures (see the module docstring)."""
    data_dir = Path(tempfile.mkdtemp(prefix="doce-bench-"))
    port, model_port = free_port(), free_port()
    env = {
        **os.environ,
        "DOCE_DATA_DIR": str(data_dir),
        "DOCE_PORT": str(port),
        "DOCE_WEB_PORT": str(free_port()),
        "DOCE_LOG_LEVEL": "WARNING",
        "DOCE_WARM_POOL_SIZE": str(pool),
        "DJANGO_SETTINGS_MODULE": "doce.settings",
    }
    env.pop("DATABASE_URL", None)
    manage(env, "migrate", "--no-input", "-v0")
    manage(env, "prepare_runtime", "--offline")
    model = subprocess.Popen(
        [PYTHON, "-m", "tests.scripted_model", "--host", "0.0.0.0", "--port", str(model_port)],  # noqa: S104
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = subprocess.Popen(
        [PYTHON, "manage.py", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{model_port}/v1/models", 30)
        wait_http(f"http://localhost:{port}/healthz", 60)  # doce's host at the edge
        token = make_user_with_provider(env, f"http://127.0.0.1:{model_port}/v1")
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"http://localhost:{port}", headers=headers, timeout=30) as api:
            pairs = []
            for index in range(runs):
                if pool:
                    wait_pool(env)
                pairs.append(one_run(api, index))
        steps = step_breakdown(env, [project_id for _, _, project_id in pairs])
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        model.terminate()
        model.wait(timeout=10)
        if pool:  # the warm stack the last claim's refill started outlives the server
            manage(env, "shell", "-c", REMOVE_POOL_CODE)
    samples = [preview for preview, _, _ in pairs]
    pages = [page for _, page, _ in pairs if page is not None]
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {
        "median_s": round(statistics.median(samples), 2),
        "p90_s": round(p90, 2),
        "runs": runs,
        "samples_s": [round(s, 2) for s in samples],
        "first_page_median_s": round(statistics.median(pages), 2) if pages else None,
        "first_page_samples_s": [None if p is None else round(p, 2) for _, p, _ in pairs],
        "steps": steps,
    }


if __name__ == "__main__":
    main()
