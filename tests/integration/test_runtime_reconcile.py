"""Reconciliation against the real Docker Engine."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from doce.docker.engine import engine_client
from doce.docker.stacks import stack_status
from projects.models import Project
from projects.reconcile import GONE_REASON, reconcile
from projects.runtime import stack_stop, stack_up

pytest_plugins = ["tests.fixtures_runtime"]
pytestmark = pytest.mark.docker


def _networks_of(project_id: str) -> list:
    client = engine_client()
    try:
        return client.networks.list(
            filters={"label": f"com.docker.compose.project=doce_{project_id}"}
        )
    finally:
        client.close()


def test_it_reconciles_the_database_with_the_engine(make_runtime_project, capsys):
    make = make_runtime_project
    orphan = make(with_dependencies=False)
    crashed = make(with_dependencies=False, status=Project.Status.RUNNING)
    vanished = make(with_dependencies=False, status=Project.Status.RUNNING)
    healthy_stopped = make(with_dependencies=False, status=Project.Status.STOPPED)
    stack_up(orphan)
    stack_up(crashed)
    stack_stop(crashed)
    assert stack_status(orphan.id).running
    orphan_id = orphan.id
    Project.objects.filter(pk=orphan_id).delete()  # deleted behind the stack's back

    report = reconcile()

    assert report.engine_error == ""
    assert report.removed == [orphan_id]
    assert not stack_status(orphan_id).exists
    assert _networks_of(orphan_id) == []
    assert report.needs_start == [crashed.id]
    assert report.marked_gone == [vanished.id]
    vanished.refresh_from_db()
    assert vanished.status == Project.Status.STOPPED
    assert vanished.status_reason == GONE_REASON
    healthy_stopped.refresh_from_db()
    assert healthy_stopped.status == Project.Status.STOPPED
    assert healthy_stopped.status_reason == ""

    # A second pass finds nothing more to remove or mark.
    again = reconcile()
    assert (again.removed, again.marked_gone, again.needs_start) == ([], [], [crashed.id])

    call_command("reconcile", "--json")
    assert f'"needs_start": ["{crashed.id}"]' in capsys.readouterr().out
