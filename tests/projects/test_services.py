"""Project actions (projects.services), unit level: what each writes and enqueues."""

from __future__ import annotations

import pytest

from doce.models import Event
from jobqueue.models import Job, JobState
from projects import services
from projects.models import Project
from tests.projects.conftest import MODEL, make_project, project_jobs

pytestmark = pytest.mark.django_db


def test_it_creates_a_project_and_enqueues_its_create_step(alice, alice_provider):
    project = services.create_project(alice, prompt="  A  site for my   bakery  ")
    assert project.status == Project.Status.CREATED
    assert project.prompt == "A  site for my   bakery" and project.name == "A site for my bakery"
    assert project.model == MODEL
    job = Job.objects.get()
    assert job.type == "project.create" and job.state == JobState.QUEUED
    assert job.dedupe_key == f"project.create:{project.id}"
    assert job.serial_key == f"project:{project.id}"
    assert job.payload == {"project_id": project.id}
    status = Event.objects.get(topic=f"project:{project.id}", type="project.status")
    assert status.payload["status"] == "created"


def test_it_names_a_project_from_the_first_words_of_its_prompt():
    assert services.name_from_prompt("a bakery") == "A bakery"
    long = services.name_from_prompt("word " * 40)
    assert len(long) <= services.NAME_MAX and long.startswith("Word word")
    assert services.name_from_prompt("x" * 100) == "X" + "x" * 59
    assert services.name_from_prompt("   ") == "Untitled site"


@pytest.mark.parametrize(
    ("prompt", "model", "message"),
    [
        ("a bakery", None, "Add a model provider in Settings"),
        ("   ", MODEL, "Describe the website"),
        ("x" * 20_001, MODEL, "under 20,000"),
    ],
)
def test_it_refuses_to_create_and_writes_nothing(bob, prompt, model, message):
    with pytest.raises(services.ProjectActionError, match=message) as refused:
        services.create_project(bob, prompt=prompt, model=model)
    if model is None:
        assert refused.value.status == 412
    assert not Project.objects.exists()
    assert not Job.objects.exists() and not Event.objects.exists()


def test_it_refuses_a_model_of_someone_elses_provider(alice, alice_provider, bob):
    from accounts.models import ProviderCredential

    ProviderCredential.objects.create(
        user=bob, kind="openai", provider_id="openai", api_key="k", model_names=["gpt-4.1"]
    )
    with pytest.raises(services.ProjectActionError, match="not one of your models"):
        services.create_project(bob, prompt="a bakery", model=MODEL)
    assert not Project.objects.exists()


def test_it_rolls_a_create_back_when_enqueueing_fails(alice, alice_provider, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("queue down")

    monkeypatch.setattr(services, "enqueue_step", broken)
    with pytest.raises(RuntimeError):
        services.create_project(alice, prompt="a bakery")
    assert not Project.objects.exists() and not Event.objects.exists()


def test_it_stops_a_project_cancelling_its_queued_start(alice, alice_provider):
    project = make_project(alice, Project.Status.STARTING)
    services.enqueue_step(project, "docker.ensureRunning")
    services.enqueue_step(project, "docker.composeUp")
    services.enqueue_step(project, "docker.waitReady", {"started_at": 0})
    services.enqueue_step(project, "opencode.awaitIdle", {"since_ms": 0}, dedupe=False)
    services.stop_project(project)
    project.refresh_from_db()
    assert project.status == Project.Status.STOPPING
    assert project_jobs(project) == [
        ("docker.ensureRunning", "cancelled"),
        ("docker.composeUp", "cancelled"),
        ("docker.waitReady", "cancelled"),
        ("opencode.awaitIdle", "queued"),
        ("docker.stop", "queued"),
    ]
    assert Job.objects.get(type="docker.stop").dedupe_key == f"docker.stop:{project.id}"


def test_it_deletes_a_project_cancelling_all_its_jobs(alice, alice_provider, bob):
    project = make_project(alice)
    other = make_project(bob)
    services.enqueue_step(project, "docker.ensureRunning")
    running = services.enqueue_step(project, "opencode.awaitIdle", {"since_ms": 0})
    Job.objects.filter(pk=running.pk).update(state=JobState.RUNNING, locked_by="w")
    services.enqueue_step(other, "docker.ensureRunning")
    services.delete_project(project)
    project.refresh_from_db()
    assert project.status == Project.Status.DELETING
    assert project_jobs(project) == [
        ("docker.ensureRunning", "cancelled"),
        ("opencode.awaitIdle", "running"),
        ("project.delete", "queued"),
    ]
    assert Job.objects.get(pk=running.pk).cancel_requested_at is not None
    assert project_jobs(other) == [("docker.ensureRunning", "queued")]
    with pytest.raises(services.ProjectActionError) as refused:
        services.start_project(project)
    assert refused.value.status == 409


def test_it_starts_the_stack_before_a_prompt_to_a_stopped_project(alice, alice_provider):
    project = make_project(alice, Project.Status.STOPPED)
    services.send_prompt(project, "  Make it pink  ")
    project.refresh_from_db()
    assert project.status == Project.Status.STARTING
    assert project_jobs(project) == [
        ("docker.ensureRunning", "queued"),
        ("opencode.sendUserPrompt", "queued"),
    ]
    job = Job.objects.get(type="opencode.sendUserPrompt")
    assert job.payload["text"] == "Make it pink" and job.payload["model"] == MODEL
    # Every prompt is its own job: a second one is not deduplicated into the first.
    services.send_prompt(project, "And blue")
    assert Job.objects.filter(type="opencode.sendUserPrompt").count() == 2
    assert Job.objects.filter(type="docker.ensureRunning").count() == 1


def test_it_sends_a_prompt_to_a_running_project_without_a_start(alice, alice_provider):
    project = make_project(alice)
    services.send_prompt(project, "hi", model=MODEL)
    assert project_jobs(project) == [("opencode.sendUserPrompt", "queued")]


@pytest.mark.parametrize(
    ("text", "model", "status", "message"),
    [
        ("  ", None, Project.Status.RUNNING, "Write a message"),
        ("x" * 20_001, None, Project.Status.RUNNING, "under 20,000"),
        ("hi", "openai/gpt-9", Project.Status.STOPPED, "not one of your models"),
        ("hi", None, Project.Status.DELETING, "being deleted"),
    ],
)
def test_it_refuses_bad_prompts_and_queues_nothing(
    alice, alice_provider, text, model, status, message
):
    project = make_project(alice, status)
    with pytest.raises(services.ProjectActionError, match=message):
        services.send_prompt(project, text, model=model)
    project.refresh_from_db()
    assert project.status == status
    assert project_jobs(project) == []


def test_it_renames_with_whitespace_collapsed(alice):
    project = make_project(alice)
    services.rename_project(project, "  My   new\tname ")
    project.refresh_from_db()
    assert project.name == "My new name"
    event = Event.objects.get(type="project.renamed")
    assert event.payload == {"name": "My new name"}


@pytest.mark.parametrize("name", ["", "   ", "n" * 121])
def test_it_refuses_bad_names(alice, name):
    project = make_project(alice)
    with pytest.raises(services.ProjectActionError, match="1 to 120"):
        services.rename_project(project, name)
    project.refresh_from_db()
    assert project.name == "Site"


def test_it_changes_the_model_only_to_one_of_the_owners(alice, alice_provider):
    from accounts.models import ProviderCredential

    ProviderCredential.objects.create(
        user=alice, kind="openai", provider_id="openai", api_key="k", model_names=["gpt-4.1"]
    )
    project = make_project(alice)
    services.change_model(project, "openai/gpt-4.1")
    project.refresh_from_db()
    assert project.model == "openai/gpt-4.1"
    for bad in ("openai/gpt-9", "nonsense", ""):
        with pytest.raises(services.ProjectActionError):
            services.change_model(project, bad)
        project.refresh_from_db()
        assert project.model == "openai/gpt-4.1"


def test_it_retries_only_a_failed_step_of_the_same_project(alice, alice_provider, bob):
    project = make_project(alice, Project.Status.ERROR, status_reason="boom")
    other = make_project(bob)
    failed = services.enqueue_step(project, "docker.composeUp")
    Job.objects.filter(pk=failed.pk).update(state=JobState.FAILED)
    foreign = services.enqueue_step(other, "docker.composeUp")
    Job.objects.filter(pk=foreign.pk).update(state=JobState.FAILED)
    queued = services.enqueue_step(project, "opencode.awaitIdle", {"since_ms": 0})

    for job in (foreign, queued):
        with pytest.raises(services.ProjectActionError, match="Only a failed step") as refused:
            services.retry_step(project, job.pk)
        assert refused.value.status == 409
    with pytest.raises(services.ProjectActionError):
        services.retry_step(project, 999_999)
    assert project_jobs(other) == [("docker.composeUp", "failed")]

    services.retry_step(project, failed.pk)
    project.refresh_from_db()
    assert (project.status, project.status_reason) == (Project.Status.STARTING, "")
    assert project_jobs(project) == [
        ("docker.composeUp", "failed"),
        ("opencode.awaitIdle", "queued"),
        ("docker.composeUp", "queued"),
    ]


def test_it_restarts_the_preview_of_a_running_project_only(alice, alice_provider):
    project = make_project(alice, Project.Status.STOPPED)
    with pytest.raises(services.ProjectActionError, match="Start the project first"):
        services.restart_preview(project)
    Project.objects.filter(pk=project.pk).update(status=Project.Status.RUNNING)
    services.restart_preview(project)
    assert project_jobs(project) == [("docker.restartPreview", "queued")]
