"""The project job chains, run by the real queue worker with Docker and the agent faked
(`fake_runtime`); the real thing is exercised by the integration and end-to-end tests."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from doce.docker.failures import FailureKind, StackError, failure
from doce.docker.health import Readiness
from jobqueue.models import Job, JobLog, JobState
from projects import attachments, chain, runtime, services
from projects.attachments import check_attachments
from projects.models import Project
from tests.projects.conftest import MODEL, make_project, project_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(30)]

CREATE_CHAIN = list(chain.CREATE_CHAIN)


@pytest.fixture(autouse=True)
def _data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path


def run_due(worker, limit: int = 50) -> int:
    """Run due jobs until none is left; returns how many ran."""
    ran = 0
    while ran < limit and worker.run_one():
        ran += 1
    return ran


def make_due() -> None:
    """Make rescheduled jobs due now (instead of waiting for their poll interval)."""
    Job.objects.filter(state=JobState.QUEUED).update(run_at=timezone.now())


def test_it_runs_the_create_chain_in_order(alice, alice_provider, worker, fake_runtime):
    project = services.create_project(alice, prompt="a bakery")
    run_due(worker)
    project.refresh_from_db()
    assert project_jobs(project) == [(step, "succeeded") for step in CREATE_CHAIN]
    assert project.status == Project.Status.RUNNING
    assert project.agent_session_id == "ses_1"
    assert (project.prompt_sent, project.prompt_completed) == (True, True)
    assert fake_runtime.prompts == [("ses_1", "a bakery", MODEL)]
    assert fake_runtime.kinds() == [
        "scaffold",
        "render",
        "render",  # compose up renders again: the owner's keys may have changed
        "up",
        "probe preview",
        "probe agent",
        "session create",
        "prompt",
        "check completion",
    ]


def test_it_waits_for_readiness_rescheduling_without_spending_attempts(
    alice, alice_provider, worker, fake_runtime
):
    fake_runtime.ready = Readiness(preview=False, agent=True)
    project = services.create_project(alice, prompt="a bakery")
    run_due(worker)
    wait = Job.objects.get(type="docker.waitReady")
    assert (wait.state, wait.attempts) == (JobState.QUEUED, 0)
    assert wait.run_at > timezone.now()  # polls again in about a second
    for _ in range(3):
        make_due()
        assert run_due(worker) == 1
    project.refresh_from_db()
    assert project.status == Project.Status.STARTING
    assert fake_runtime.kinds().count("probe preview") == 4

    fake_runtime.ready = Readiness(preview=True, agent=True)
    make_due()
    run_due(worker)
    project.refresh_from_db()
    assert project.status == Project.Status.RUNNING
    assert project_jobs(project) == [(step, "succeeded") for step in CREATE_CHAIN]


@pytest.mark.parametrize(
    ("step", "ready", "missing"),
    [
        ("docker.waitReady", Readiness(preview=False, agent=True), "preview"),
        ("opencode.waitReady", Readiness(preview=True, agent=False), "agent"),
    ],
)
def test_it_gives_up_waiting_after_the_ready_timeout_with_a_readable_reason(
    alice, alice_provider, worker, fake_runtime, settings, step, ready, missing
):
    settings.DOCE_READY_TIMEOUT_SECONDS = 10
    fake_runtime.ready = ready
    project = make_project(alice, Project.Status.STARTING)
    services.enqueue_step(project, step, {"started_at": time.time() - 5})
    run_due(worker)
    assert Job.objects.get().state == JobState.QUEUED  # 5 s in: still waiting
    Job.objects.update(payload={"project_id": project.id, "started_at": time.time() - 11})
    make_due()
    run_due(worker)
    job = Job.objects.get()
    project.refresh_from_db()
    assert job.state == JobState.FAILED and job.attempts == 1  # permanent: no retries
    assert project.status == Project.Status.ERROR
    assert project.status_reason.startswith(f"The {missing} did not answer within 11 s.")
    assert "Logs tab" in project.status_reason
    assert "Traceback" not in project.status_reason
    assert project_jobs(project) == [(step, "failed")]  # no session step follows


def test_the_preview_is_shown_while_the_agent_is_still_starting(
    alice, alice_provider, worker, fake_runtime
):
    fake_runtime.ready = Readiness(preview=True, agent=False)
    project = services.create_project(alice, prompt="a bakery")
    run_due(worker)
    project.refresh_from_db()
    # viewable at once; the prompt waits for the agent
    assert (project.status, project.agent_state) == (Project.Status.RUNNING, "starting")
    assert project.prompt_state == "queued" and fake_runtime.prompts == []
    assert Job.objects.get(type="opencode.waitReady").state == JobState.QUEUED

    fake_runtime.ready = Readiness(preview=True, agent=True)
    make_due()
    run_due(worker)
    project.refresh_from_db()
    assert project.agent_state == "ready"
    assert fake_runtime.prompts == [("ses_1", "a bakery", MODEL)]
    assert project_jobs(project) == [(step, "succeeded") for step in CREATE_CHAIN]


def test_it_puts_the_project_in_error_on_a_permanent_stack_error(
    alice, alice_provider, worker, fake_runtime
):
    fake_runtime.up_error = StackError(failure(FailureKind.IMAGE_MISSING, "no such image"))
    project = services.create_project(alice, prompt="a bakery")
    run_due(worker)
    project.refresh_from_db()
    assert project_jobs(project) == [
        ("project.create", "succeeded"),
        ("docker.composeUp", "failed"),
    ]
    assert Job.objects.get(type="docker.composeUp").attempts == 1
    assert project.status == Project.Status.ERROR
    assert project.status_reason == failure(FailureKind.IMAGE_MISSING).message
    assert "build_images" in project.status_reason


def test_it_retries_a_transient_stack_error_and_fails_on_the_last_attempt(
    alice, alice_provider, worker, fake_runtime
):
    # (An unreachable Engine is held instead: see the test at the end.)
    fake_runtime.up_error = StackError(failure(FailureKind.TIMEOUT))
    project = services.create_project(alice, prompt="a bakery")
    run_due(worker)
    compose = Job.objects.get(type="docker.composeUp")
    assert compose.state == JobState.QUEUED and compose.attempts == 1  # backing off
    project.refresh_from_db()
    assert project.status == Project.Status.STARTING
    Job.objects.filter(pk=compose.pk).update(max_attempts=2)
    make_due()
    run_due(worker)
    compose.refresh_from_db()
    project.refresh_from_db()
    assert compose.state == JobState.FAILED
    assert project.status == Project.Status.ERROR
    assert project.status_reason == failure(FailureKind.TIMEOUT).message
    assert JobLog.objects.filter(job=compose, level="error").count() == 2


def test_it_lets_the_next_attempt_pick_new_ports_after_a_port_clash(
    alice, alice_provider, worker, fake_runtime
):
    fake_runtime.up_error = StackError(failure(FailureKind.PORT_IN_USE))
    project = services.create_project(alice, prompt="a bakery")
    run_due(worker)
    project.refresh_from_db()
    assert (project.preview_port, project.agent_port) == (None, None)
    fake_runtime.up_error = None
    make_due()
    run_due(worker)
    project.refresh_from_db()
    assert project.status == Project.Status.RUNNING and project.preview_port == 47000


def test_it_recreates_a_vanished_agent_session(alice, alice_provider, worker, fake_runtime):
    project = make_project(
        alice,
        Project.Status.RUNNING,
        agent_port=47001,
        preview_port=47000,
        agent_session_id="ses_gone",
        prompt_sent=True,
    )
    services.enqueue_step(project, "opencode.sessionCreate")
    run_due(worker)
    project.refresh_from_db()
    assert project.agent_session_id == "ses_1"
    job = Job.objects.get(type="opencode.sessionCreate")
    assert JobLog.objects.filter(job=job, message__contains="vanished").exists()
    assert project_jobs(project) == [("opencode.sessionCreate", "succeeded")]  # prompt already sent


def test_it_holds_a_prompt_until_the_project_runs_then_sends_it(
    alice, alice_provider, worker, fake_runtime, settings
):
    settings.DOCE_READY_TIMEOUT_SECONDS = 10
    project = make_project(
        alice,
        Project.Status.STARTING,
        agent_port=47001,
        preview_port=47000,
        agent_session_id="ses_1",
        prompt_sent=True,
        prompt_completed=True,
    )
    fake_runtime.sessions.add("ses_1")
    services.enqueue_step(project, "opencode.sendUserPrompt", {"text": "pink"}, dedupe=False)
    run_due(worker)
    assert Job.objects.get().state == JobState.QUEUED and fake_runtime.prompts == []
    Project.objects.filter(pk=project.pk).update(status="running", agent_state="starting")
    make_due()
    run_due(worker)
    assert fake_runtime.prompts == []  # the preview runs, the agent does not answer yet
    Project.objects.filter(pk=project.pk).update(agent_state="ready")
    make_due()
    run_due(worker)
    assert fake_runtime.prompts == [("ses_1", "pink", MODEL)]
    project.refresh_from_db()
    assert project.prompt_completed is True
    assert project_jobs(project) == [
        ("opencode.sendUserPrompt", "succeeded"),
        ("opencode.awaitIdle", "succeeded"),
    ]

    # A prompt for an agent that never comes is dropped with a reason after the timeout.
    Project.objects.filter(pk=project.pk).update(status=Project.Status.STARTING)
    services.enqueue_step(
        project,
        "opencode.sendUserPrompt",
        {"text": "late", "queued_at": time.time() - 11},
        dedupe=False,
    )
    run_due(worker)
    late = Job.objects.filter(type="opencode.sendUserPrompt").latest("id")
    assert late.state == JobState.FAILED
    assert "did not become available" in late.last_error


def test_a_queued_prompts_attachments_are_sent_from_disk_then_removed(
    alice, alice_provider, worker, fake_runtime
):
    project = make_project(alice, Project.Status.STOPPED, agent_port=47001, preview_port=47000)
    files = check_attachments([("notes.txt", b"Open 8 to 18\n"), ("more.txt", b"Closed Sun")])
    assert services.send_prompt(project, "Use the notes", attachments=files) is False
    folder = project.root_dir / attachments.QUEUED_DIR
    assert len(list(folder.iterdir())) == 2
    Project.objects.filter(pk=project.pk).update(
        status="running", agent_state="ready", agent_session_id="ses_1"
    )
    fake_runtime.sessions.add("ses_1")
    Job.objects.exclude(type="opencode.sendUserPrompt").delete()  # the start chain: faked
    run_due(worker)
    assert fake_runtime.prompts == [("ses_1", "Use the notes", MODEL)]
    [parts] = fake_runtime.prompt_parts
    assert [(p["filename"], p["mime"]) for p in parts] == [
        ("notes.txt", "text/plain"),
        ("more.txt", "text/plain"),
    ]
    assert parts[0]["url"] == "data:text/plain;base64,T3BlbiA4IHRvIDE4Cg=="
    assert list(folder.iterdir()) == []  # sent: the agent keeps them now


def test_a_prompt_that_cannot_be_queued_leaves_no_attachment_behind(
    alice, alice_provider, monkeypatch
):
    project = make_project(alice, Project.Status.STOPPED, agent_port=47001, preview_port=47000)

    enqueue = services.enqueue_step

    def broken(project, step, *args, **kwargs):
        if step == chain.SEND_PROMPT:  # after the files were written
            raise RuntimeError("the database went away")
        return enqueue(project, step, *args, **kwargs)

    monkeypatch.setattr(services, "enqueue_step", broken)
    with pytest.raises(RuntimeError):
        services.send_prompt(project, "Use it", attachments=check_attachments([("a.txt", b"x")]))
    assert list((project.root_dir / attachments.QUEUED_DIR).iterdir()) == []


def test_a_queued_prompt_whose_attachment_is_gone_fails_saying_so(
    alice, alice_provider, worker, fake_runtime
):
    project = make_project(alice, Project.Status.STOPPED, agent_port=47001, preview_port=47000)
    services.send_prompt(project, "Use it", attachments=check_attachments([("a.txt", b"x")]))
    for stored in (project.root_dir / attachments.QUEUED_DIR).iterdir():
        stored.unlink()
    Project.objects.filter(pk=project.pk).update(
        status="running", agent_state="ready", agent_session_id="ses_1"
    )
    fake_runtime.sessions.add("ses_1")
    Job.objects.exclude(type="opencode.sendUserPrompt").delete()
    run_due(worker)
    job = Job.objects.get(type="opencode.sendUserPrompt")
    assert job.state == JobState.FAILED and "a.txt" in job.last_error
    assert fake_runtime.prompts == []  # never sent without its attachment
    project.refresh_from_db()
    assert project.prompt_state == "failed"


def test_deleting_a_project_removes_its_queued_attachments(
    alice, alice_provider, worker, fake_runtime
):
    project = make_project(alice, Project.Status.STOPPED, agent_port=47001, preview_port=47000)
    services.send_prompt(project, "Use it", attachments=check_attachments([("a.txt", b"x")]))
    assert any((project.root_dir / attachments.QUEUED_DIR).iterdir())
    services.delete_project(project)
    run_due(worker)
    assert not project.root_dir.exists()


def test_a_rerun_of_a_sent_prompt_does_not_send_it_again(
    alice, alice_provider, worker, fake_runtime
):
    project = make_project(alice, agent_port=47001, preview_port=47000, agent_session_id="ses_1")
    fake_runtime.sessions.add("ses_1")
    services.enqueue_step(project, "opencode.sendUserPrompt", {"text": "pink"}, dedupe=False)
    first = Job.objects.get(type="opencode.sendUserPrompt")
    run_due(worker)
    assert fake_runtime.prompts == [("ses_1", "pink", MODEL)]
    # The worker died after sending: the same job (same message id) runs again.
    Job.objects.filter(pk=first.pk).update(state=JobState.QUEUED, finished_at=None)
    run_due(worker)
    assert fake_runtime.prompts == [("ses_1", "pink", MODEL)]
    assert "not resending" in " ".join(first.logs.values_list("message", flat=True))


def test_it_opens_a_session_for_a_held_prompt_of_a_running_project(
    alice, alice_provider, worker, fake_runtime
):
    # Running, but without an agent session (e.g. it vanished): the prompt job must get one.
    project = make_project(
        alice,
        Project.Status.RUNNING,
        agent_port=47001,
        preview_port=47000,
        prompt_sent=True,
        prompt_completed=True,
    )
    services.enqueue_step(project, "opencode.sendUserPrompt", {"text": "blue"}, dedupe=False)
    run_due(worker)
    make_due()
    run_due(worker)
    project.refresh_from_db()
    assert project.agent_session_id == "ses_1"
    assert fake_runtime.prompts == [("ses_1", "blue", MODEL)]
    assert ("opencode.sessionCreate", "succeeded") in project_jobs(project)


def test_it_polls_an_unfinished_prompt(alice, alice_provider, worker, fake_runtime):
    fake_runtime.completion = "pending"
    project = services.create_project(alice, prompt="a bakery")
    run_due(worker)
    idle = Job.objects.get(type="opencode.awaitIdle")
    assert idle.state == JobState.QUEUED
    fake_runtime.completion = "done"
    make_due()
    run_due(worker)
    project.refresh_from_db()
    assert project.prompt_completed is True


def test_it_stops_a_project(alice, alice_provider, worker, fake_runtime):
    project = make_project(alice)
    services.stop_project(project)
    run_due(worker)
    project.refresh_from_db()
    assert project.status == Project.Status.STOPPED
    assert fake_runtime.kinds() == ["stop"]


def test_it_starts_a_stopped_project_and_skips_the_first_prompt_once_sent(
    alice, alice_provider, worker, fake_runtime
):
    fake_runtime.ready = Readiness(preview=False, agent=False)
    project = make_project(
        alice,
        Project.Status.STOPPED,
        preview_port=47000,
        agent_port=47001,
        agent_session_id="ses_1",
        prompt_sent=True,
    )
    project.site_dir.mkdir(parents=True)
    fake_runtime.sessions.add("ses_1")
    services.start_project(project)
    run_due(worker)
    fake_runtime.ready = Readiness(preview=True, agent=True)
    make_due()
    run_due(worker)
    project.refresh_from_db()
    assert project.status == Project.Status.RUNNING
    assert project_jobs(project) == [
        ("docker.ensureRunning", "succeeded"),
        ("docker.waitReady", "succeeded"),
        ("opencode.waitReady", "succeeded"),
        ("opencode.sessionCreate", "succeeded"),
    ]
    assert fake_runtime.prompts == []
    assert "scaffold" not in fake_runtime.kinds()  # the site was there


def test_it_deletes_a_project_and_is_safe_to_run_again(alice, alice_provider, worker, fake_runtime):
    project = make_project(
        alice,
        Project.Status.RUNNING,
        preview_port=47000,
        agent_port=47001,
    )
    project.site_dir.mkdir(parents=True)
    (project.site_dir / "index.html").write_text("<h1>hi</h1>")
    services.delete_project(project)
    run_due(worker)
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not project.root_dir.exists()
    assert fake_runtime.kinds() == ["down delete", "delete files"]
    # Again, for a project that is already gone: a success that does nothing.
    services.enqueue_step(project, "project.delete")
    run_due(worker)
    assert Job.objects.filter(type="project.delete", state=JobState.SUCCEEDED).count() == 2
    assert fake_runtime.kinds() == ["down delete", "delete files"]


def test_it_ends_a_step_whose_project_was_deleted_meanwhile(alice, worker, fake_runtime):
    job = services.enqueue_step(
        Project(id="0123456789abcdef", owner=alice, name="x", prompt="x"), "docker.composeUp"
    )
    run_due(worker)
    job.refresh_from_db()
    assert job.state == JobState.FAILED and "no longer exists" in job.last_error
    assert fake_runtime.calls == []


def test_it_keeps_a_project_stopped_when_stopped_before_its_create_step_ran(
    alice, alice_provider, worker, fake_runtime
):
    project = services.create_project(alice, prompt="a bakery")
    services.stop_project(project)
    run_due(worker)
    project.refresh_from_db()
    assert project.status == Project.Status.STOPPED
    assert "up" not in fake_runtime.kinds()
    assert fake_runtime.prompts == []


def test_it_keeps_a_project_stopped_when_stopped_during_compose_up(
    alice, alice_provider, worker, fake_runtime, monkeypatch
):
    project = services.create_project(alice, prompt="a bakery")

    def up_then_user_stops(project):
        fake_runtime.calls.append(("up", project.id))
        services.stop_project(Project.objects.get(pk=project.pk))

    monkeypatch.setattr(runtime, "stack_up", up_then_user_stops)
    fake_runtime.ready = Readiness(preview=False, agent=False)  # the stack was stopped
    run_due(worker)
    make_due()
    run_due(worker)
    project.refresh_from_db()
    assert project.status == Project.Status.STOPPED and project.status_reason == ""
    assert dict(project_jobs(project))["docker.stop"] == "succeeded"
    assert "check_ready" not in fake_runtime.kinds()
    assert fake_runtime.prompts == []


def test_an_unreachable_engine_holds_the_start_and_resumes_when_it_answers(
    alice, alice_provider, worker, fake_runtime, monkeypatch
):
    from doce import engine_health
    from doce.docker.engine import EngineStatus
    from doce.models import EngineHealth
    from projects import housekeeping

    fake_runtime.up_error = StackError(failure(FailureKind.ENGINE_UNREACHABLE))
    project = services.create_project(alice, prompt="a bakery")
    for _ in range(5):  # far more tries than the job's attempts: none is spent
        run_due(worker)
        make_due()
    up = Job.objects.get(type="docker.composeUp")
    assert (up.state, up.attempts, up.last_error) == (JobState.QUEUED, 0, "")
    project.refresh_from_db()
    assert project.status == Project.Status.STARTING
    assert project.status_reason == services.WAITING_FOR_DOCKER
    assert EngineHealth.objects.get().unreachable_since is not None
    # The worker's health check finds the Engine back: the held step runs at once.
    Job.objects.filter(pk=up.pk).update(run_at=timezone.now() + timedelta(minutes=2))
    fake_runtime.up_error = None
    monkeypatch.setattr(engine_health, "engine_status", lambda: EngineStatus(True, "20.10.24"))
    assert housekeeping.record_engine_health() == {"came_back": True, "resumed": 1}
    run_due(worker)
    project.refresh_from_db()
    assert project.status == Project.Status.RUNNING
    assert project.status_reason == ""
    assert fake_runtime.prompts == [("ses_1", "a bakery", MODEL)]


def test_it_names_the_project_after_the_session_title_unless_the_user_named_it(
    alice, alice_provider, worker, fake_runtime
):
    fake_runtime.title = "Lisbon bakery with opening hours"
    project = services.create_project(alice, prompt="a bakery in lisbon with opening hours and")
    run_due(worker)
    project.refresh_from_db()
    assert project.name == "Lisbon bakery with opening hours"
    named = Project.objects.create(owner=alice, prompt="p", name="Mine", name_from_user=True)
    assert not services.adopt_session_title(named, "Agent title")
    assert not services.adopt_session_title(project, "New session - 2026-01-01T00:00:00.000Z")
    services.rename_project(project, "Renamed")
    fake_runtime.title = "Something else"
    services.record_prompt_sent(project, since_ms=0)  # a later prompt, tracked to its end
    run_due(worker)
    project.refresh_from_db()
    assert project.name == "Renamed"
