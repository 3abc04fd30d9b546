"""The one status writer: `services.set_status` moves a project only along
`Project.TRANSITIONS`, by compare-and-set, and records one `project.status` event per move.

Runs on SQLite and again in the Postgres pass of `make test`.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from doce.models import Event
from projects import services
from projects.models import IllegalTransition, Project, project_topic
from tests.projects.conftest import make_project

pytestmark = pytest.mark.django_db

S = Project.Status
ALLOWED = [(before, after) for after, sources in Project.TRANSITIONS.items() for before in sources]
ILLEGAL = [
    (before, after) for after in S for before in S if before not in Project.TRANSITIONS[after]
]


def _status_events(project) -> list[dict]:
    return [
        event.payload
        for event in Event.objects.filter(topic=project_topic(project.id), type="project.status")
    ]


def test_it_declares_a_rule_for_every_status():
    assert set(Project.TRANSITIONS) == set(S)
    assert len(ALLOWED) + len(ILLEGAL) == len(S) ** 2
    # Nothing leaves `deleting`, and only a new row is `created`.
    assert all(after == S.DELETING for before, after in ALLOWED if before == S.DELETING)
    assert all(before == S.CREATED for before, after in ALLOWED if after == S.CREATED)


@pytest.mark.parametrize(("before", "after"), ALLOWED, ids=[f"{b}->{a}" for b, a in ALLOWED])
def test_it_makes_every_allowed_transition_with_its_event(alice, before, after):
    project = make_project(alice, before, preview_port=41234)
    services.set_status(project, after, "why" if after == S.ERROR else "")
    assert project.status == after
    project.refresh_from_db()
    assert project.status == after
    assert _status_events(project) == [
        {
            "status": after.value,
            "label": after.label,
            "reason": "why" if after == S.ERROR else "",
            "preview_port": 41234,
            "agent_state": project.agent_state,
            "agent_label": project.get_agent_state_display(),
        }
    ]


@pytest.mark.parametrize(("before", "after"), ILLEGAL, ids=[f"{b}->{a}" for b, a in ILLEGAL])
def test_it_refuses_every_illegal_transition_and_writes_nothing(alice, before, after):
    project = make_project(alice, before, status_reason="kept")
    with pytest.raises(IllegalTransition, match=f"cannot go from '{before}' to '{after}'") as err:
        services.set_status(project, after)
    assert (err.value.current, err.value.to) == (before, after)
    project.refresh_from_db()
    assert (project.status, project.status_reason) == (before, "kept")
    assert _status_events(project) == []


def test_it_checks_the_status_in_the_database_not_the_one_the_caller_read(alice):
    project = make_project(alice, S.RUNNING)
    stale = Project.objects.get(pk=project.pk)
    services.set_status(project, S.DELETING)
    with pytest.raises(IllegalTransition):
        services.set_status(stale, S.STARTING)
    project.refresh_from_db()
    assert project.status == S.DELETING


def test_it_narrows_the_sources_to_what_the_caller_expects(alice):
    project = make_project(alice, S.STOPPING)
    with pytest.raises(IllegalTransition):
        services.set_status(project, S.STOPPED, "gone", from_={S.RUNNING})
    services.set_status(project, S.STOPPED, from_={S.RUNNING, S.STOPPING})
    assert project.status == S.STOPPED


def test_it_says_when_the_project_is_gone(alice):
    project = make_project(alice, S.RUNNING)
    Project.objects.filter(pk=project.pk).delete()
    with pytest.raises(Project.DoesNotExist):
        services.set_status(project, S.STOPPED)


@pytest.mark.django_db(transaction=True)
def test_it_settles_two_concurrent_transitions_by_compare_and_set(alice):
    """Two writers both saw `running`: one stops the project, one puts it in error. Exactly
    one wins; the other is refused, and only the winner's event is recorded."""
    project = make_project(alice, S.RUNNING)
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def move(to: str) -> None:
        mine = Project.objects.get(pk=project.pk)
        barrier.wait()
        try:
            services.set_status(mine, to, "why" if to == S.ERROR else "", from_={S.RUNNING})
            outcomes[to] = "won"
        except IllegalTransition:
            outcomes[to] = "refused"
        finally:
            connection.close()

    threads = [threading.Thread(target=move, args=(to,)) for to in (S.STOPPED, S.ERROR)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes.values()) == ["refused", "won"]
    winner = next(to for to, outcome in outcomes.items() if outcome == "won")
    project.refresh_from_db()
    assert project.status == winner
    assert [event["status"] for event in _status_events(project)] == [winner]
