"""A project stack on the real Docker Engine: up, ready, idempotent up, logs, stop, down."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from django.conf import settings
from django.test.utils import override_settings

from doce.docker.engine import engine_client
from doce.docker.failures import FailureKind, StackError
from doce.docker.logs import DockerLog, read_log
from doce.docker.stacks import stack_status
from projects.ports import ensure_ports
from projects.runtime import render_stack, stack_down, stack_stop, stack_up, wait_ready

pytest_plugins = ["tests.fixtures_runtime"]
pytestmark = pytest.mark.docker

READY_TIMEOUT_S = 90


def _host_config(container_id: str) -> dict:
    client = engine_client()
    try:
        return client.api.inspect_container(container_id)["HostConfig"]
    finally:
        client.close()


def _wait_for(predicate, timeout: float = 20.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def test_it_runs_a_project_stack_end_to_end(runtime_project):
    project = runtime_project

    first = stack_up(project)
    assert first.exit_code == 0
    readiness = wait_ready(project, timeout=READY_TIMEOUT_S)
    assert readiness.preview, "the preview never answered"
    assert readiness.agent, "the agent never answered /doc"

    page = httpx.get(f"http://127.0.0.1:{project.preview_port}/", timeout=10)
    assert page.status_code == 200
    assert "<title>A new site</title>" in page.text

    doc = httpx.get(
        f"http://127.0.0.1:{project.agent_port}/doc",
        auth=("opencode", project.agent_password),
        timeout=10,
    )
    assert doc.status_code == 200
    assert "openapi" in doc.json()
    anonymous = httpx.get(f"http://127.0.0.1:{project.agent_port}/doc", timeout=10)
    assert anonymous.status_code == 401

    limits = _host_config(stack_status(project.id).containers["preview"].id)
    assert limits["Memory"] == settings.DOCE_PREVIEW_MEMORY_MB * 1024 * 1024
    assert limits["NanoCpus"] == int(settings.DOCE_PREVIEW_CPUS * 1e9)
    assert not limits["Privileged"]
    assert not any("docker.sock" in bind for bind in limits["Binds"])

    # A second `up` leaves the running containers alone.
    before = {s: c.id for s, c in stack_status(project.id).containers.items()}
    second = stack_up(project)
    assert second.exit_code == 0
    after = stack_status(project.id)
    assert {s: c.id for s, c in after.containers.items()} == before
    assert after.running

    # Container output reaches the log through the SDK followers.
    assert _wait_for(lambda: "[app] preview: " in read_log(project).text)
    assert _wait_for(lambda: "[app] agent: " in read_log(project).text)

    stack_stop(project)
    stopped = stack_status(project.id)
    assert stopped.exists and not stopped.running
    assert {stopped.state("preview"), stopped.state("agent")} == {"exited"}

    text, offset, truncated = read_log(project)
    assert not truncated
    assert "[host " in text and "exit=0" in text
    assert "up --detach" in text
    assert "[docker] " in text
    assert "[app] " in text

    # Reading from the returned offset resumes exactly where the last read ended.
    DockerLog.in_dir(project.logs_dir).host("marker one")
    DockerLog.in_dir(project.logs_dir).docker(["marker two"])
    more, next_offset, more_truncated = read_log(project, offset)
    assert more.splitlines()[0].endswith("] marker one")
    assert more.splitlines()[1] == "[docker] marker two"
    assert len(more.splitlines()) == 2
    assert not more_truncated
    assert read_log(project, next_offset).text == ""

    # A stopped stack with unchanged files and images is started as it is, through the SDK.
    stack_up(project)
    restarted = stack_status(project.id)
    assert restarted.running
    assert {s: c.id for s, c in restarted.containers.items()} == before
    assert "] docker start doce_" in read_log(project, next_offset).text

    # A changed rendering goes through compose, which recreates the containers.
    render_stack(project, extra_env={"EXTRA_SETTING": "1"})
    stack_stop(project)
    stack_up(project)
    recreated = stack_status(project.id)
    assert recreated.running
    assert recreated.containers["agent"].id != before["agent"]

    stack_down(project)
    assert not stack_status(project.id).exists


def test_it_moves_to_a_new_port_when_one_is_taken(make_runtime_project):
    project = make_runtime_project(with_dependencies=False)
    taken = project.preview_port
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()

        with pytest.raises(StackError) as caught:
            stack_up(project)
        assert caught.value.failure.kind == FailureKind.PORT_IN_USE
        assert caught.value.failure.retryable
        assert "port" in caught.value.failure.message

        # The next attempt: ensure_ports notices the squatter and picks a new pair.
        preview_port, agent_port = ensure_ports(project)
        assert preview_port != taken
        assert (preview_port % 2, agent_port - preview_port) == (0, 1)
        project.refresh_from_db()
        assert project.preview_port == preview_port

        render_stack(project)
        stack_up(project)
        assert _wait_for(lambda: stack_status(project.id).running, timeout=30)


def test_it_reports_an_unreachable_engine_without_a_traceback(make_runtime_project):
    project = make_runtime_project(with_dependencies=False)
    # Scoped to the call: the fixture's teardown needs the real Engine again.
    with (
        override_settings(DOCE_DOCKER_HOST="unix:///nonexistent/doce-test/docker.sock"),
        pytest.raises(StackError) as caught,
    ):
        stack_up(project)

    failure = caught.value.failure
    assert failure.kind == FailureKind.ENGINE_UNREACHABLE
    assert failure.retryable
    assert str(caught.value).startswith("Docker Engine unreachable")
    assert "Traceback" not in str(caught.value)
    assert "Docker Engine unreachable" in read_log(project).text
