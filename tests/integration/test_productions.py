"""Production deploys against the real Docker Engine and the real builder container.

One project goes through a whole release history (sharing its builds across assertions):
build the template → a static release, its first worker killed (`kill -9`) mid-build; the
same state again → no new release; a change with a new `public/` asset → a second release,
its worker killed right after the switch; a broken `.astro` file → failed with the log tail
while the live release stays; rollback; retention; project delete leaves nothing. A second
project does the same for server releases (started beside the live one, rollback restarts
the old one, reconciliation restarts a vanished live container).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import httpx
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from doce.docker.services import find_services, remove_service
from doce.edge import sync as edge_sync
from doce.edge.binary import caddy_binary
from jobqueue.models import Job, JobState
from jobqueue.services import reap_expired_leases
from jobqueue.worker import Worker
from productions import services
from productions.build import LABEL_PRODUCTION, builder_name
from productions.jobs import answers, current_target, remove_production_containers
from productions.lifecycle import reconcile
from productions.models import Production, Release, releases_dir
from productions.routes import site_routes
from projects import services as project_services
from projects.jobs import delete as delete_handler  # noqa: F401 (registers project.delete)
from tests.productions.poller import Poller

pytest_plugins = ["tests.fixtures_runtime"]
pytestmark = [pytest.mark.docker, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def run_jobs(worker, limit: int = 200, wait: float = 120.0) -> list[str]:
    """Run jobs until none is queued, waiting for rescheduled ones (at most `wait` seconds
    in all); returns the production job types run, each once per job."""
    ran: list[str] = []
    seen: set[int] = set()
    deadline = time.monotonic() + wait
    while len(ran) < limit and time.monotonic() < deadline:
        job = Job.objects.queued().order_by("run_at", "id").first()
        if job is None:
            break
        if job.run_at > timezone.now():
            time.sleep(0.1)
            continue
        if worker.run_one() and job.pk not in seen:
            seen.add(job.pk)
            if job.type.startswith("production."):  # not the edge's own sync jobs
                ran.append(job.type)
    return ran


def write_page(project, heading: str) -> None:
    page = project.site_dir / "src" / "pages" / "index.astro"
    text = page.read_text()
    start = text.index("<h1>") + 4
    page.write_text(text[:start] + heading + text[text.index("</h1>") :])


LEASE_SECONDS = 2.0


@contextmanager
def worker_process(kill_at: str = "", drain: float = 0) -> Iterator[subprocess.Popen]:
    """A real `manage.py run_worker` against the test database (killed on exit). With
    `kill_at`, the worker kills itself (SIGKILL) at that point of a deploy
    (`tests.productions.deploy_worker_main`). `drain`: `DOCE_PROD_DRAIN_SECONDS`."""
    conf = connection.settings_dict
    env = {
        **os.environ,
        "DOCE_PORT": str(settings.DOCE_PORT),
        "DATABASE_URL": f"sqlite:///{conf['NAME']}",
        "DOCE_DATA_DIR": str(settings.DATA_DIR),
        "DOCE_INSTANCE": settings.DOCE_INSTANCE,
        "DOCE_EXTRA_CA_BUNDLE": settings.DOCE_EXTRA_CA_BUNDLE,
        "DOCE_PROD_DRAIN_SECONDS": str(drain),
        "DOCE_RELEASES_KEPT": str(settings.DOCE_RELEASES_KEPT),
        "DOCE_QUEUE_LEASE_SECONDS": str(LEASE_SECONDS),
        "DOCE_QUEUE_HEARTBEAT_SECONDS": "0.3",
        "DOCE_QUEUE_REAP_SECONDS": "0.3",
        "DOCE_LOG_LEVEL": "WARNING",
        "DOCE_TEST_KILL_AT": kill_at,
        "PYTHONPATH": str(ROOT),
    }
    main = ["manage.py", "run_worker"]
    if kill_at:
        main = ["-m", "tests.productions.deploy_worker_main"]
    process = subprocess.Popen(
        [sys.executable, *main, "--concurrency", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        kill(process)


def kill(process: subprocess.Popen) -> None:
    """`kill -9` the process (if it still runs) and reap it."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(10)


def wait_for(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def container_names(project) -> set[str]:
    return {c.name for c in find_services({LABEL_PRODUCTION: project.id})}


def serving(project) -> str:
    """The id of the release the site's route serves when its folder exists, else ""."""
    routes = [r for r in site_routes() if r.project_id == project.id]
    if not routes or not Path(routes[0].root, "index.html").is_file():
        return ""
    return routes[0].release_id


def live(project) -> Production:
    return Production.objects.select_related("live_release").get(pk=project.pk)


@pytest.fixture
def worker():
    return Worker(worker_id="test-worker", concurrency=1, housekeeping=False, lease_seconds=120)


@pytest.fixture
def edge(settings, tmp_path):
    """A real Caddy (the edge) on a free port, loaded by doce's own sync path; yields
    `get(host) -> (status, text)` for requests to a site host through it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.DOCE_PORT = port
    socket_path = edge_sync.admin_socket()
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    config = edge_sync.edge_dir() / "caddy.json"
    config.write_text(json.dumps(edge_sync.current_config()))
    directory = edge_sync.edge_dir()
    process = subprocess.Popen(
        [caddy_binary(), "run", "--config", str(config)],
        env={
            **os.environ,
            "XDG_DATA_HOME": str(directory / "data"),
            "XDG_CONFIG_HOME": str(directory / "config"),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def get(host: str, path: str = "/") -> tuple[int, str, dict]:
        response = httpx.get(f"http://127.0.0.1:{port}{path}", headers={"Host": host}, timeout=5)
        return response.status_code, response.text, dict(response.headers)

    get.port = port  # type: ignore[attr-defined]

    wait_for(lambda: os.path.exists(socket_path), timeout=20)
    try:
        yield get
    finally:
        kill(process)
        # No edge any more: later syncs must not find a stale admin socket.
        if os.path.exists(socket_path):
            os.unlink(socket_path)


@pytest.fixture
def deploying(settings, make_runtime_project, bob, worker):
    settings.DOCE_PROD_DRAIN_SECONDS = 0
    settings.DOCE_RELEASES_KEPT = 2
    settings.DOCE_BUILD_CPUS = 1.0
    # With its own node_modules (copied from the prewarmed template), which builds link.
    project = make_runtime_project(owner=bob)
    yield project
    remove_production_containers(project.id)


def stylesheet(release: Release) -> str:
    """The path of the hashed stylesheet a release's page links (`/_astro/….css`)."""
    page = (release.directory / "index.html").read_text()
    found = re.search(r'href="(/_astro/[^"]+\.css)"', page)
    assert found, page[:500]
    return found.group(1)


def test_a_site_goes_through_its_release_history(deploying, bob, worker, edge):
    project = deploying
    host = f"s-{project.id}.localhost"
    assert edge(host)[0] == 404  # nothing deployed: the edge does not serve the host
    # Styles as hashed files under /_astro/ (not inlined), as a bigger site's would be.
    config = project.site_dir / "astro.config.mjs"
    config.write_text(
        config.read_text().replace(
            "defineConfig({", 'defineConfig({\n  build: { inlineStylesheets: "never" },'
        )
    )

    # 1. The template builds into a static release that goes live. The first worker is
    #    killed during the build: the next one reclaims the job, removes the half-done
    #    builder and builds again.
    services.deploy(project, bob)
    with worker_process() as doomed:
        wait_for(lambda: builder_name(project.id) in container_names(project), timeout=180)
        kill(doomed)
    with worker_process() as other:
        wait_for(lambda: serving(project), timeout=300)
        wait_for(lambda: not Job.objects.filter(state__in=["queued", "running"]).exists(), 60)
        kill(other)
    production = live(project)
    first = production.live_release
    assert production.status == Production.Status.LIVE, production.last_error
    # served by the edge (the worker's switch loaded the route), with the site headers
    status, text, headers = edge(host)
    assert status == 200 and "A new site is on its way" in text
    assert headers["x-content-type-options"] == "nosniff"
    assert first is not None and first.kind == Release.Kind.STATIC
    assert first.deployed_by == bob and len(first.commit) == 40 and first.size_bytes > 0
    page = (first.directory / "index.html").read_text()
    assert "A new site is on its way" in page
    assert (first.directory / "favicon.svg").is_file()  # public/ is part of the build
    assert current_target(project) == first.release_id
    first_css = stylesheet(first)
    assert edge(host, first_css)[0] == 200
    assert "Complete!" in first.build_log
    # the build log streamed into the project's Docker log as it ran
    assert "[app] build:" in (project.logs_dir / "docker.log").read_text()
    assert find_services({LABEL_PRODUCTION: project.id}) == []  # the builder is gone
    assert not any((project.root_dir / "builds").iterdir())

    # 2. Nothing changed: no new release.
    services.deploy(project, bob)
    run_jobs(worker)
    production = live(project)
    assert Release.objects.filter(project=project).count() == 1
    assert production.status == Production.Status.LIVE
    assert production.live_release == first
    assert "Nothing changed" in production.last_error

    # 3. A change with a new public/ asset: a second release, live; the first is kept. Its
    #    worker is killed right after the switch: the new release serves; the job runs
    #    again when its lease expires; reconciliation points `current` at it.
    write_page(project, "Fresh bread daily")
    page_file = project.site_dir / "src" / "pages" / "index.astro"
    page_file.write_text(page_file.read_text() + "\n<style>h1 { color: #7a3b10; }</style>\n")
    (project.site_dir / "public" / "menu.txt").write_text("rye, spelt\n")
    services.deploy(project, bob)
    with worker_process() as doomed:
        wait_for(lambda: serving(project) not in ("", first.release_id), timeout=300)
        kill(doomed)
    assert serving(project) == live(project).live_release.release_id
    reconcile()
    time.sleep(LEASE_SECONDS + 0.5)
    reap_expired_leases()
    run_jobs(worker)
    second = live(project).live_release
    assert second is not None and second.release_id != first.release_id
    assert "Fresh bread daily" in (second.directory / "index.html").read_text()
    assert (second.directory / "menu.txt").read_text() == "rye, spelt\n"
    assert "Fresh bread daily" in edge(host)[1]
    assert first.directory.is_dir()
    assert current_target(project) == second.release_id
    # Never a mix of releases: a page of the first release loaded before the switch still
    # gets its own stylesheet after it (the edge falls back to retained releases for hashed
    # assets the live one lacks); the second release's page gets the second's.
    second_css = stylesheet(second)
    assert second_css != first_css and not (second.directory / first_css[1:]).exists()
    status, text, _ = edge(host, first_css)
    assert status == 200 and text == (first.directory / first_css[1:]).read_text()
    status, text, _ = edge(host, second_css)
    assert status == 200 and "#7a3b10" in text
    assert edge(host, "/_astro/missing.css")[0] == 404

    # 4. A broken page: the build fails with its log's tail, the second release stays live.
    good = page_file.read_text()
    page_file.write_text(good.replace("</main>", "</main>\n{ broken ( \n"))
    services.deploy(project, bob)
    run_jobs(worker)
    production = live(project)
    assert production.status == Production.Status.FAILED
    assert "The build failed" in production.last_error
    assert "index.astro" in production.last_error  # the tail names the broken file
    assert "live release still serves" in production.last_error
    assert production.live_release == second
    assert current_target(project) == second.release_id
    assert "Fresh bread daily" in edge(host)[1]  # still served
    assert Release.objects.filter(project=project).count() == 2
    assert find_services({LABEL_PRODUCTION: project.id}) == []

    # 5. Rollback to the first release: the same path as a deploy. Between static releases
    #    the switch is `current` moving: the edge's configuration stays the same (no Caddy
    #    reload, which would close idle keep-alive connections).
    config_before = edge_sync.current_config()
    services.activate(project, first)
    assert run_jobs(worker)[:2] == [services.ACTIVATE, services.PROMOTE]
    production = live(project)
    assert production.status == Production.Status.LIVE and production.live_release == first
    assert current_target(project) == first.release_id
    assert edge_sync.current_config() == config_before
    assert "A new site is on its way" in edge(host)[1]
    assert edge(host, first_css)[0] == 200
    assert edge(host, second_css)[0] == 200  # pages of the second release still open
    assert edge(host, "/menu.txt")[0] == 404  # only hashed assets fall back, never pages
    # a custom domain serves the site; detached, it is not served any more
    services.attach_domain(project, "www.bakery.example")
    assert "A new site is on its way" in edge("www.bakery.example")[1]
    services.detach_domain(project, "www.bakery.example")
    assert edge("www.bakery.example")[0] == 404

    # 6. Retention (2 kept): a third release prunes the oldest one that is not live. The
    #    first (live until the switch) is the oldest; the second is newer.
    page_file.write_text(good.replace("Fresh bread daily", "Cakes on Sundays"))
    services.deploy(project, bob)
    run_jobs(worker)
    third = live(project).live_release
    assert third is not None and third.release_id not in (first.release_id, second.release_id)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.state == Release.State.PRUNED and not first.directory.exists()
    assert second.state == Release.State.READY and second.directory.is_dir()
    assert set(os.listdir(releases_dir(project))) == {
        second.release_id,
        third.release_id,
        "current",
        "_assets",
    }
    assert edge(host, first_css)[0] == 404  # pruned: no longer routed
    assert edge(host, second_css)[0] == 200

    # 7. Deleting the project leaves no container, route or folder.
    project_services.delete_project(project)
    run_jobs(worker)
    assert edge(host)[0] == 404
    assert not project.root_dir.exists()
    assert not Production.objects.filter(pk=project.pk).exists()
    assert find_services({LABEL_PRODUCTION: project.id}) == []
    assert not Job.objects.filter(
        serial_key=f"production:{project.id}", state=JobState.QUEUED
    ).exists()


# An Astro integration standing in for a server adapter (no network here to install
# @astrojs/node): after the build it writes `dist/server/entry.mjs`, a Node server that
# answers every request with the built page.
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
    name: "test-server-entry",
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


def fetch(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        return response.read().decode()


def running_releases(project) -> set[str]:
    return {
        c.labels["dev.doce.release"][:12]
        for c in find_services({LABEL_PRODUCTION: project.id})
        if c.status == "running"
    }


def test_server_releases_start_beside_the_live_one_and_roll_back(deploying, bob, worker):
    project = deploying
    (project.site_dir / "astro.config.mjs").write_text(SERVER_CONFIG)
    write_page(project, "Server one")
    services.deploy(project, bob)
    ran = run_jobs(worker)
    assert ran[:4] == [services.BUILD, services.START, services.WAIT_READY, services.PROMOTE]
    one = live(project).live_release
    assert one is not None and one.kind == Release.Kind.SERVER, live(project).last_error
    assert "Server one" in fetch(one.port)
    assert running_releases(project) == {one.short_id}

    # A second release starts next to the first, takes over, and the first is stopped.
    write_page(project, "Server two")
    services.deploy(project, bob)
    run_jobs(worker)
    two = live(project).live_release
    assert two is not None and two != one and "Server two" in fetch(two.port)
    assert running_releases(project) == {two.short_id}
    one.refresh_from_db()
    assert one.port is None

    # Rollback restarts the old release's container and serves it again.
    services.activate(project, one)
    assert run_jobs(worker)[:4] == [
        services.ACTIVATE,
        services.START,
        services.WAIT_READY,
        services.PROMOTE,
    ]
    one.refresh_from_db()
    assert live(project).live_release == one and "Server one" in fetch(one.port)
    assert running_releases(project) == {one.short_id}

    # The live release's container vanishes (host restart, someone removed it):
    # reconciliation starts it again.
    remove_service(one.container_name, stop_timeout=1)
    report = reconcile()
    assert report.restarted == [project.id]
    one.refresh_from_db()
    deadline = time.monotonic() + 60
    while not answers(one.port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "Server one" in fetch(one.port)
    assert live(project).status == Production.Status.LIVE

    # A deploy stuck in `building` whose job is gone (its worker was killed and the queue gave
    # up) is failed by reconciliation; the live release is untouched.
    production = live(project)
    services.set_production_status(production, Production.Status.QUEUED)
    services.set_production_status(production, Production.Status.BUILDING)
    assert reconcile().interrupted == [project.id]
    production = live(project)
    assert production.status == Production.Status.FAILED
    assert production.live_release == one and "Server one" in fetch(one.port)

    # Stop: no live release, no container; releases stay on disk.
    services.stop(project)
    run_jobs(worker)
    assert running_releases(project) == set()
    assert live(project).live_release is None and one.directory.is_dir()


def release_label(body: str) -> str:
    """Which release a page is from, by its heading ("one", "two"), else its first bytes."""
    for name in ("one", "two"):
        if f"Release {name}" in body:
            return name
    return body[:60]


def container_id(name: str) -> str:
    client = docker.from_env()
    try:
        return client.containers.get(name).id
    finally:
        client.close()


def test_a_deploy_whose_workers_are_killed_completes_exactly_once(deploying, bob, worker, edge):
    """Server release two replaces release one while its workers die by `kill -9` twice: once
    right after the builder ran (nothing stored yet), once while `production.waitReady` holds
    its job (two's container started, not switched to). A third worker finishes the deploy.
    A poller through the real edge every 20 ms sees release one until the switch and two
    after it, with no failed request; the deploy ends with one new release, live, its
    container started once; the old one is stopped."""
    project = deploying
    host = f"s-{project.id}.localhost"
    (project.site_dir / "astro.config.mjs").write_text(SERVER_CONFIG)
    write_page(project, "Release one")
    services.deploy(project, bob)
    run_jobs(worker)
    one = live(project).live_release
    assert one is not None and one.kind == Release.Kind.SERVER, live(project).last_error
    assert "Release one" in edge(host)[1]

    write_page(project, "Release two")
    site = f"http://127.0.0.1:{edge.port}/"
    with Poller(site, host=host, interval=0.02, label=release_label) as poller:
        deployed_at = timezone.now()
        services.deploy(project, bob)
        with worker_process(kill_at="build_done") as doomed:
            assert doomed.wait(300) == -signal.SIGKILL
        production = live(project)
        assert production.status == Production.Status.BUILDING
        assert production.live_release == one
        assert Release.objects.filter(project=project).count() == 1  # nothing recorded

        with worker_process(kill_at="wait_ready") as doomed:
            assert doomed.wait(300) == -signal.SIGKILL
        production = live(project)
        two = production.target_release
        assert production.status == Production.Status.STARTING
        assert production.live_release == one and two is not None and two != one
        assert running_releases(project) == {one.short_id, two.short_id}
        two_container = container_id(two.container_name)

        with worker_process(drain=1):
            wait_for(lambda: live(project).live_release_id == two.pk, timeout=120)
            wait_for(lambda: running_releases(project) == {two.short_id}, timeout=60)
            wait_for(
                lambda: (
                    not Job.objects.filter(
                        serial_key=f"production:{project.id}",
                        state__in=[JobState.QUEUED, JobState.RUNNING],
                    ).exists()
                ),
                timeout=60,
            )
        time.sleep(0.2)  # a few more requests after the old container is gone

    # Served without a failed request: release one until the switch, then release two.
    assert poller.failures == [], poller.failures[:5]
    assert poller.labels_in_order() == ["one", "two"], poller.labels_in_order()
    assert len(poller.samples) > 100
    # Exactly once: one new release, live; its container is the one started before the
    # crash in waitReady (the start step did not run again); `current` points at it.
    production = live(project)
    assert production.status == Production.Status.LIVE and production.live_release == two
    assert Release.objects.filter(project=project).count() == 2
    assert container_id(two.container_name) == two_container
    assert current_target(project) == two.release_id
    assert "Release two" in edge(host)[1]
    steps = Job.objects.filter(
        serial_key=f"production:{project.id}", created_at__gte=deployed_at
    ).values_list("type", "state", "attempts")
    by_type = {kind: (state, attempts) for kind, state, attempts in steps}
    assert sorted(kind for kind, _, _ in steps) == sorted(
        [services.BUILD, services.START, services.WAIT_READY, services.PROMOTE, services.RETIRE]
    )
    assert by_type[services.BUILD] == (JobState.SUCCEEDED, 2)  # the killed attempt counts
    assert by_type[services.START] == (JobState.SUCCEEDED, 1)
    assert by_type[services.PROMOTE] == (JobState.SUCCEEDED, 1)
    assert not any((project.root_dir / "builds").iterdir())
