"""A Docker outage holds work instead of failing it: with the Engine unreachable for 60 s
while a project starts, the project waits ("Waiting for Docker"), then reaches `running` by
itself once the Engine answers again, with its first prompt sent once.

The outage is simulated, never by stopping the machine's dockerd: doce talks to the Engine
through a unix-socket proxy in front of /var/run/docker.sock that this test starts and stops.
"""

from __future__ import annotations

import contextlib
import select
import socket
import socketserver
import threading
import time
from pathlib import Path

import pytest
from django.db import transaction
from django.test.utils import override_settings

from accounts.models import ProviderCredential
from doce.models import EngineHealth
from doce.opencode.agents import client_for_project
from jobqueue.worker import Worker
from projects import services
from projects.models import Project

pytest_plugins = ["tests.fixtures_runtime"]
pytestmark = [pytest.mark.docker, pytest.mark.django_db(transaction=True)]

ENGINE_SOCKET = "/var/run/docker.sock"
OUTAGE_SECONDS = 60
MODEL = "openrouter/google/gemini-2.5-flash"


class _Pipe(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(ENGINE_SOCKET)
        self.server.open.add(self.request)
        ends = [self.request, upstream]
        try:
            while True:
                readable, _, _ = select.select(ends, [], [], 0.5)
                if self.server.closing:
                    return
                for end in readable:
                    data = end.recv(65536)
                    if not data:
                        return
                    (upstream if end is self.request else self.request).sendall(data)
        except OSError:
            return
        finally:
            self.server.open.discard(self.request)
            upstream.close()


class DockerSocketProxy:
    """Forwards connections on `path` to the real Engine socket while started."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._server: socketserver.ThreadingUnixStreamServer | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def start(self) -> None:
        server = socketserver.ThreadingUnixStreamServer(str(self.path), _Pipe)
        server.daemon_threads = True
        server.open = set()
        server.closing = False
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server

    def stop(self) -> None:
        """Refuse new connections and cut the open ones: the Engine is gone."""
        server, self._server = self._server, None
        if server is None:
            return
        server.closing = True
        server.shutdown()
        server.server_close()
        for conn in list(server.open):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.path.unlink(missing_ok=True)


@pytest.fixture
def docker_proxy(tmp_path):
    proxy = DockerSocketProxy(tmp_path / "docker.sock")
    yield proxy
    proxy.stop()


def wait_until(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.5)


@pytest.mark.timeout(900)  # a 60 s outage, then a real stack start on a loaded machine
def test_a_project_started_during_a_docker_outage_runs_by_itself_when_docker_returns(
    make_runtime_project, alice, docker_proxy
):
    ProviderCredential.objects.create(
        user=alice,
        kind="openrouter",
        provider_id="openrouter",
        api_key="sk-or-v1-outage-test-not-a-real-key-0000000000000000000000000000",
        model_names=["google/gemini-2.5-flash"],
    )
    project = make_runtime_project(owner=alice, model=MODEL, prompt="A site about kites")
    # Scoped to the outage run: the fixtures' teardown needs the real Engine again.
    with override_settings(DOCE_DOCKER_HOST=docker_proxy.url):  # the proxy is down for now
        run_through_an_outage(project, docker_proxy)
    project.refresh_from_db()
    assert project.status == Project.Status.RUNNING
    assert project.status_reason == ""
    agent = client_for_project(project)
    users = [m for m in agent.messages(project.agent_session_id) if m.info.role == "user"]
    assert len(users) == 1


def run_through_an_outage(project: Project, docker_proxy: DockerSocketProxy) -> None:
    """Start the project with Docker down; bring Docker back after `OUTAGE_SECONDS`; return
    once the first prompt is sent."""
    with transaction.atomic():
        services.set_status(project, Project.Status.STARTING)
    services.enqueue_step(project, "docker.composeUp")
    worker = Worker(concurrency=2, poll_seconds=0.2)
    runner = threading.Thread(target=worker.run, daemon=True)
    runner.start()
    try:
        wait_until(
            lambda: Project.objects.get(pk=project.pk).status_reason == services.WAITING_FOR_DOCKER,
            timeout=60,
        )
        time.sleep(OUTAGE_SECONDS)
        held = Project.objects.get(pk=project.pk)
        assert (held.status, held.status_reason) == (
            Project.Status.STARTING,
            services.WAITING_FOR_DOCKER,
        )
        assert EngineHealth.objects.get().reachable is False
        docker_proxy.start()  # Docker is back; nobody touches the project
        wait_until(lambda: Project.objects.get(pk=project.pk).prompt_sent, timeout=300)
    finally:
        worker.stop()
        runner.join(60)
