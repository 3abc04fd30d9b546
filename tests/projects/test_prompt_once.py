"""The first prompt reaches the agent once, whatever moment its worker is killed at.

Real worker processes against the pinned OpenCode server (driven by the scripted model): the
first worker dies with SIGKILL at one point of `opencode.sendUserPrompt`; a second worker
with the same id (a restarted process slot) releases the job at once and runs it again. The
session must hold one user message with the prompt and one answer to it.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from doce.opencode.client import OpencodeClient
from jobqueue.models import Job, JobState
from projects import services
from projects.models import Project
from tests.jobqueue.conftest import ROOT, wait_for, worker_env
from tests.opencode.fixtures import require_opencode

pytestmark = [pytest.mark.opencode, pytest.mark.django_db(transaction=True)]

WORKER_ID = "test-host:slot-1"
PROMPT = "[script:text] a page about kites"
# Same id each start (a restarted slot); no housekeeping (its reconcile would stop a project
# that has no containers).
WORKER_ARGS = ["--worker-id", WORKER_ID, "--concurrency", "1", "--no-housekeeping"]


def start_worker(record_dir, kill_at: str = "") -> subprocess.Popen:
    env = worker_env(record_dir, DOCE_TEST_KILL_AT=kill_at)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.projects.prompt_worker_main", *WORKER_ARGS],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def agent_server():
    """The session's pinned OpenCode server, driven by the scripted model."""
    return require_opencode()


def job_state(job_type: str) -> str | None:
    job = Job.objects.filter(type=job_type).order_by("-id").first()
    return job.state if job else None


@pytest.mark.parametrize("kill_at", ["before_send", "after_send", "after_recorded"])
def test_it_sends_the_first_prompt_once_when_the_worker_dies(
    kill_at,
    alice,
    agent_server,
    tmp_path,
):
    agent = OpencodeClient(agent_server.base_url, agent_server.password)
    session = agent.create_session(title=f"kill {kill_at}")
    project = Project.objects.create(
        owner=alice,
        name="Kites",
        prompt=PROMPT,
        model="scripted/scripted",
        status=Project.Status.RUNNING,
        agent_state="ready",
        agent_port=agent_server.port,
        agent_password=agent_server.password,
        agent_session_id=session.id,
    )
    services.enqueue_step(project, "opencode.sendUserPrompt", {"text": PROMPT}, dedupe=False)
    first = start_worker(tmp_path, kill_at)
    try:
        assert first.wait(60) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
    second = start_worker(tmp_path)
    try:
        wait_for(lambda: job_state("opencode.awaitIdle") == JobState.SUCCEEDED, timeout=120)
    finally:
        second.kill()
        second.wait(10)
    assert job_state("opencode.sendUserPrompt") == JobState.SUCCEEDED
    messages = agent.messages(session.id)
    agent.close()
    users = [m for m in messages if m.info.role == "user"]
    assert len(users) == 1
    answers = [
        m for m in messages if m.info.role == "assistant" and m.info.parentID == users[0].info.id
    ]
    assert len(answers) == 1, [m.info for m in answers]
    project.refresh_from_db()
    assert project.prompt_sent and project.prompt_completed
