"""Host port allocation for project stacks."""

from __future__ import annotations

import socket

import pytest

from doce.docker.failures import FailureKind, StackError
from doce.docker.stacks import ContainerState, StackStatus
from projects import ports
from projects.models import Project


@pytest.fixture
def narrow_range(settings):
    # A range unlikely to be in use by anything else on a test machine.
    settings.DOCE_PORT_RANGE = (47100, 47109)
    settings.DOCE_BIND_ADDRESS = "127.0.0.1"
    return settings.DOCE_PORT_RANGE


def _project(owner, **fields) -> Project:
    return Project.objects.create(owner=owner, name="p", prompt="p", **fields)


def test_it_allocates_an_even_preview_port_and_the_odd_agent_port(db, bob, narrow_range):
    project = _project(bob)
    preview, agent = ports.allocate_ports(project)
    assert narrow_range[0] <= preview < agent <= narrow_range[1]
    assert preview % 2 == 0 and agent == preview + 1
    project.refresh_from_db()
    assert (project.preview_port, project.agent_port) == (preview, agent)


def test_it_never_hands_out_a_port_twice(db, bob, narrow_range):
    projects = [_project(bob) for _ in range(5)]
    pairs = [ports.allocate_ports(project) for project in projects]
    used = [port for pair in pairs for port in pair]
    assert len(set(used)) == 10

    with pytest.raises(StackError) as caught:
        ports.allocate_ports(_project(bob))
    assert caught.value.failure.kind == FailureKind.PORT_IN_USE
    assert caught.value.permanent
    assert "DOCE_PORT_RANGE" in caught.value.failure.message


def test_it_skips_ports_another_program_holds(db, bob, settings):
    settings.DOCE_PORT_RANGE = (47120, 47123)
    settings.DOCE_BIND_ADDRESS = "127.0.0.1"
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 47121))  # the agent port of the first pair
        squatter.listen()
        assert not ports.port_is_free("127.0.0.1", 47121)
        assert ports.allocate_ports(_project(bob)) == (47122, 47123)


def test_it_releases_ports(db, bob, narrow_range):
    project = _project(bob)
    ports.allocate_ports(project)
    ports.release_ports(project)
    project.refresh_from_db()
    assert project.preview_port is None and project.agent_port is None


def test_it_keeps_ports_a_running_stack_holds(db, bob, narrow_range, monkeypatch):
    project = _project(bob, preview_port=47100, agent_port=47101)
    running = StackStatus(
        project.id,
        {
            "preview": ContainerState("preview", "a", "running"),
            "agent": ContainerState("agent", "b", "running"),
        },
    )
    monkeypatch.setattr(ports, "stack_status", lambda project_id: running)
    with socket.socket() as held:  # stands in for docker-proxy holding the preview port
        held.bind(("127.0.0.1", 47100))
        held.listen()
        assert ports.ensure_ports(project) == (47100, 47101)


def test_it_moves_a_stopped_stack_off_a_taken_port(db, bob, narrow_range, monkeypatch):
    project = _project(bob, preview_port=47100, agent_port=47101)
    monkeypatch.setattr(ports, "stack_status", lambda project_id: StackStatus(project_id))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 47100))
        squatter.listen()
        preview, agent = ports.ensure_ports(project)
    assert preview != 47100 and agent == preview + 1
