"""Instant projects (issue 15) on the real Engine, the pinned OpenCode agent, the model gateway
and the scripted model: one project serves every assertion, to keep CI lean.

1. A create makes the project `running` (its preview answering) while its agent is still
   starting; the prompt is handed over once the agent answers, and the page it writes shows.
2. Idle: the agent stops, the preview stays up; a prompt wakes the agent through the gateway
   (a fresh token) and is sent once.
3. Shared dependencies: two projects hold the same inode for a store file; the agent's
   `npm install` of another version in one project leaves the other (and the store) as they
   were.
"""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta

import httpx
import pytest
from django.test.utils import override_settings
from django.utils import timezone

from accounts.models import ProviderCredential
from doce.docker.engine import engine_client
from doce.docker.stacks import stack_status
from doce.models import Event
from doce.opencode.client import OpencodeClient
from jobqueue.worker import Worker
from projects import services
from projects.models import AgentState, Project, project_topic
from projects.runtime import delete_files, stack_down
from projects.scaffold import prewarm_dir, template_lock_hash
from tests.gateway.server import shared_gateway_listener
from tests.scripted_model import ScriptedModelServer

pytest_plugins = ["tests.fixtures_runtime"]
pytestmark = [
    pytest.mark.docker,
    pytest.mark.opencode,
    pytest.mark.timeout(600),
    pytest.mark.django_db(transaction=True),
]

KEY = "PLANTEDinstantKEY7c2e91"
STORE_FILE = "picocolors/picocolors.js"


def run_worker_until(worker: Worker, done, timeout: float = 240.0, what: str = "") -> None:
    """Run due jobs in this process until `done()` is true."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            jobs = list(
                worker_jobs().values_list("type", "state", "last_error")  # for the failure text
            )
            raise AssertionError(f"timed out waiting for {what}: {jobs}")
        if not worker.run_one():
            time.sleep(0.05)


def worker_jobs():
    from jobqueue.models import Job

    return Job.objects.order_by("id")


def fresh(project: Project) -> Project:
    project.refresh_from_db()
    return project


def first_running_event(project: Project) -> Event | None:
    """The first `project.status` event of `project` that says it is running."""
    return (
        Event.objects.filter(topic=project_topic(project.id), type="project.status")
        .filter(payload__status="running")
        .order_by("id")
        .first()
    )


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_instant_preview_idle_agent_and_shared_store(
    runtime_images, make_runtime_project, alice, settings
):
    listener = shared_gateway_listener()
    model = ScriptedModelServer("127.0.0.1", 0, required_key=KEY).start()
    worker = Worker(worker_id="instant-test", concurrency=1, housekeeping=False)
    project = None
    try:
        with override_settings(DOCE_GATEWAY_PORT=listener.port, DOCE_AGENT_IDLE_STOP_SECONDS=60):
            ProviderCredential.objects.create(
                user=alice,
                kind="openai-compatible",
                provider_id="local",
                label="Local model",
                base_url=model.base_url,
                api_key=KEY,
                model_names=["scripted"],
            )
            # 1. The preview is shown before the agent is ready.
            created_at = time.monotonic()
            project = services.create_project(
                alice, prompt="Bakery by the sea", model="local/scripted"
            )
            run_worker_until(
                worker, lambda: fresh(project).status == Project.Status.RUNNING, what="running"
            )
            running_after = time.monotonic() - created_at
            page = httpx.get(f"http://127.0.0.1:{project.preview_port}/", timeout=30)
            assert page.status_code == 200
            first_running = first_running_event(project)
            # The project became viewable while its agent was still starting.
            assert first_running.payload["agent_state"] == AgentState.STARTING
            run_worker_until(
                worker, lambda: fresh(project).prompt_state == "completed", what="first prompt"
            )
            page_after = time.monotonic() - created_at
            print(f"running after {running_after:.1f} s, page after {page_after:.1f} s")
            page = httpx.get(f"http://127.0.0.1:{project.preview_port}/", timeout=30)
            assert "<h1>Bakery by the sea</h1>" in page.text

            # 2. The idle agent sleeps; the preview stays up.
            later = timezone.now() + timedelta(seconds=61)
            assert services.stop_idle_agents(later) == 1
            run_worker_until(
                worker,
                lambda: fresh(project).agent_state == AgentState.STOPPED,
                what="agent stopped",
            )
            containers = stack_status(project.id).containers
            assert containers["agent"].status == "exited"
            assert containers["preview"].status == "running"
            assert httpx.get(f"http://127.0.0.1:{project.preview_port}/", timeout=30).is_success
            assert fresh(project).status == Project.Status.RUNNING
            token_before = project.gateway_token_digest

            # A prompt wakes it (through the gateway, with a new token) and is sent once.
            assert services.send_prompt(project, "[script:text] Opening hours") is False
            run_worker_until(
                worker,
                lambda: fresh(project).prompt_state in ("completed", "failed"),
                what="woken prompt",
            )
            assert project.prompt_state == "completed", project.prompt_failure
            assert project.status == Project.Status.RUNNING
            assert project.gateway_token_digest != token_before
            agent = OpencodeClient(f"http://127.0.0.1:{project.agent_port}", project.agent_password)
            try:
                messages = agent.messages(project.agent_session_id)
            finally:
                agent.close()
            users = [m for m in messages if m.info.role == "user"]
            assert len(users) == 2
            answers = [m for m in messages if m.info.parentID == users[1].info.id]
            assert len(answers) == 1 and answers[0].info.error is None

            # 3. Shared dependencies: one inode in the store and in both projects.
            other = make_runtime_project(owner=alice, name="Other")
            store = prewarm_dir(template_lock_hash()) / "node_modules" / STORE_FILE
            mine = project.site_dir / "node_modules" / STORE_FILE
            theirs = other.site_dir / "node_modules" / STORE_FILE
            assert store.stat().st_ino == mine.stat().st_ino == theirs.stat().st_ino
            before = digest(theirs)
            # What the agent's shell tool does: npm inside the agent container, on this site.
            client = engine_client()
            try:
                container = client.containers.get(stack_status(project.id).containers["agent"].id)
                result = container.exec_run(
                    ["npm", "install", "picocolors@1.0.0", "--prefer-offline", "--no-audit"],
                    workdir="/app",
                )
            finally:
                client.close()
            assert result.exit_code == 0, result.output.decode(errors="replace")[-2000:]
            assert '"version": "1.0.0"' in (mine.parent / "package.json").read_text()
            assert mine.stat().st_ino != store.stat().st_ino  # replaced, not written in place
            assert theirs.stat().st_ino == store.stat().st_ino
            assert digest(theirs) == digest(store) == before
            assert '"version": "1.1.1"' in (theirs.parent / "package.json").read_text()
    finally:
        if project is not None:
            stack_down(project, delete=True)
            delete_files(project)
        model.stop()
