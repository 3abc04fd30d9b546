"""Lean idle: an idle project's agent sleeps while its preview stays up; a prompt (or a chat
viewer) wakes it and the prompt is sent once. Docker and the agent are faked
(`fake_runtime`); `tests/integration/test_instant.py` runs the same against the real ones."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from jobqueue.models import Job, JobState
from projects import presence, services
from projects.models import AgentState, Project, Viewer
from tests.projects.conftest import MODEL, make_project, project_jobs
from tests.projects.test_jobs import make_due, run_due

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(30)]


@pytest.fixture(autouse=True)
def _data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    settings.DOCE_AGENT_IDLE_STOP_SECONDS = 120


def later(seconds: float = 121):
    return timezone.now() + timedelta(seconds=seconds)


_ports = itertools.count(47000, 2)


def idle_project(owner, **fields) -> Project:
    port = next(_ports)
    defaults = {
        "agent_state_at": timezone.now(),
        "preview_port": port,
        "agent_port": port + 1,
        "agent_session_id": "ses_1",
        "prompt_sent": True,
        "prompt_completed": True,
        "prompt_state": "completed",
    }
    return make_project(owner, **{**defaults, **fields})


def test_it_picks_only_agents_idle_for_the_whole_time(alice, alice_provider):
    idle = idle_project(alice)
    watched = idle_project(alice)
    Viewer.objects.create(project=watched, user=alice, channel_name="c1", heartbeat_at=later(120))
    answering = idle_project(alice, prompt_completed=False, prompt_state="running")
    queued = idle_project(alice, prompt_state="queued")
    asleep = idle_project(alice, agent_state=AgentState.STOPPED)
    assert services.idle_agents(later(60)) == []  # not idle long enough
    assert [p.pk for p in services.idle_agents(later())] == [idle.pk]
    for other in (watched, answering, queued, asleep):
        other.refresh_from_db()  # untouched

    assert services.stop_idle_agents(later()) == 1
    idle.refresh_from_db()
    assert idle.agent_state == AgentState.STOPPING and idle.status == Project.Status.RUNNING
    assert project_jobs(idle) == [("docker.stopAgent", "queued")]
    assert services.stop_idle_agents(later()) == 0  # compare-and-set: asked once


def test_zero_keeps_agents_running(alice, alice_provider, settings):
    settings.DOCE_AGENT_IDLE_STOP_SECONDS = 0
    idle_project(alice)
    assert services.stop_idle_agents(later(10_000)) == 0


def test_a_prompt_wakes_the_sleeping_agent_and_is_sent_once(
    alice, alice_provider, worker, fake_runtime
):
    project = idle_project(alice)
    fake_runtime.sessions.add("ses_1")
    project.site_dir.mkdir(parents=True)
    services.stop_idle_agents(later())
    run_due(worker)
    project.refresh_from_db()
    assert project.agent_state == AgentState.STOPPED
    assert fake_runtime.kinds().count("stop agent") == 1
    assert project.status == Project.Status.RUNNING  # the preview stays up and shown

    assert services.send_prompt(project, "make it pink") is False  # queued: agent asleep
    statuses = []
    for _ in range(30):
        if not run_due(worker, limit=1):
            make_due()  # a rescheduled step: now rather than in a second
        project.refresh_from_db()
        statuses.append(project.status)
    assert set(statuses) == {Project.Status.RUNNING}  # never back to "starting"
    assert project.agent_state == AgentState.READY
    assert fake_runtime.prompts == [("ses_1", "make it pink", MODEL)]
    assert project.prompt_state == "completed"
    done = [job for job in project_jobs(project) if job[1] == "succeeded"]
    assert [t for t, _ in done][:2] == ["docker.stopAgent", "docker.ensureRunning"]
    assert "opencode.waitReady" in [t for t, _ in done]


def test_a_stop_overtaken_by_a_prompt_does_not_stop_the_woken_agent(
    alice, alice_provider, worker, fake_runtime
):
    project = idle_project(alice)
    fake_runtime.sessions.add("ses_1")
    project.site_dir.mkdir(parents=True)
    services.stop_idle_agents(later())  # stopping, docker.stopAgent queued
    services.send_prompt(project, "hello")  # wakes: docker.ensureRunning after it
    for _ in range(30):
        if not run_due(worker):
            make_due()
    project.refresh_from_db()
    assert project.agent_state == AgentState.READY
    assert fake_runtime.prompts == [("ses_1", "hello", MODEL)]


def test_a_viewer_wakes_a_sleeping_agent(alice, alice_provider):
    project = idle_project(alice, agent_state=AgentState.STOPPED)
    presence.viewer_joined(project, alice, "chan-1")
    assert project_jobs(project) == [("docker.ensureRunning", "queued")]


def test_a_provider_change_does_not_wake_a_sleeping_agent(
    alice, alice_provider, worker, fake_runtime
):
    project = idle_project(alice, agent_state=AgentState.STOPPED)
    old_digest = project.gateway_token_digest
    services.reconfigure_agents(alice)
    run_due(worker)
    project.refresh_from_db()
    assert project.agent_state == AgentState.STOPPED
    assert "up" not in fake_runtime.kinds() and "restart agent" not in fake_runtime.kinds()
    config = (project.root_dir / "stack" / "agent-config" / "opencode.json").read_text()
    assert "openrouter" in config and project.gateway_token_digest != old_digest

    # A starting agent gets the change once it answers (the step waits, no attempt spent).
    Project.objects.filter(pk=project.pk).update(agent_state=AgentState.STARTING)
    services.reconfigure_agents(alice)
    run_due(worker)
    job = Job.objects.filter(type="opencode.reconfigure").order_by("-id").first()
    assert (job.state, job.attempts) == (JobState.QUEUED, 0)
