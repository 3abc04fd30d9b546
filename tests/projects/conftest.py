import hashlib
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from accounts.models import ApiToken, ProviderCredential
from doce.models import Event
from jobqueue.models import Job
from jobqueue.worker import Worker
from projects.models import AgentState, Project, Viewer
from tests.ws import session_cookie, ws_communicator  # noqa: F401 (shared helpers)

# A provider key shaped like a real OpenRouter key: it must never leave doce's database,
# the agent's 0600 config file and the agent container.
PLANTED_KEY = "sk-or-v1-PLANTED0f3c9a7e5d1b2468ace13579bdf02468ace13579bdf0246"
MODEL = "openrouter/google/gemini-2.5-flash"


@pytest.fixture
def alice_project(alice, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    project = Project.objects.create(owner=alice, name="Alice's bakery", prompt="a bakery site")
    site = project.site_dir
    (site / "src" / "pages").mkdir(parents=True)
    (site / "src" / "pages" / "index.astro").write_text("---\nconst t = 'Hi';\n---\n<h1>{t}</h1>\n")
    (site / "package.json").write_text('{"name": "bakery"}\n')
    (site / "public").mkdir()
    (site / "public" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    (site / "node_modules" / "astro").mkdir(parents=True)
    (site / "node_modules" / "astro" / "index.js").write_text("module.exports = 1")
    (site / "dist").mkdir()
    (site / "dist" / "index.html").write_text("<h1>built</h1>")
    (site / ".env").write_text("SECRET_TOKEN=sk-planted-secret-123456")
    (site / ".git").mkdir()
    (site / ".git" / "HEAD").write_text("ref: refs/heads/main")
    outside = tmp_path / "outside.txt"
    outside.write_text("host secret")
    (site / "src" / "escape.txt").symlink_to(outside)
    return project


@pytest.fixture
def alice_provider(alice):
    """An OpenRouter key of Alice's (the planted key) with one model."""
    return ProviderCredential.objects.create(
        user=alice,
        kind="openrouter",
        provider_id="openrouter",
        api_key=PLANTED_KEY,
        model_names=["google/gemini-2.5-flash"],
    )


@pytest.fixture
def worker():
    """An unstarted queue worker: `worker.run_one()` claims and runs one due job here."""
    return Worker(worker_id="test-worker", concurrency=1, housekeeping=False, lease_seconds=60)


def _files(root) -> dict[str, str]:
    found = {}
    if root.exists():
        for path in sorted(root.rglob("*")):
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = "-> " + str(path.readlink())
            elif path.is_file():
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                found[rel] = "dir"
    return found


def snapshot() -> dict:
    """Everything a request could change: projects, jobs, events, viewers, credentials,
    tokens, and every file under DOCE_DATA_DIR (contents hashed)."""
    return {
        "projects": list(Project.objects.order_by("pk").values()),
        "jobs": list(Job.objects.order_by("pk").values()),
        "events": list(Event.objects.order_by("pk").values_list("pk", flat=True)),
        "viewers": list(Viewer.objects.order_by("pk").values()),
        "providers": list(ProviderCredential.objects.order_by("pk").values()),
        "tokens": list(ApiToken.objects.order_by("pk").values()),
        "files": _files(Path(django_settings.DATA_DIR)),
    }


class FakeRuntime:
    """Stands in for Docker and the agent in job-handler tests: records every call.

    `ready` is what `check_ready` answers; `up_error` / `stop_error` are raised by
    `stack_up` / `stack_stop`; `sessions` are the agent's session ids; `prompts` what it
    was sent; `completion` the `CompletionCheck` state `check_completion` reports.
    """

    def __init__(self) -> None:
        from doce.docker.health import Readiness

        self.calls: list[tuple[str, str]] = []
        self.ready = Readiness(preview=True, agent=True)
        self.up_error: Exception | None = None
        self.stop_error: Exception | None = None
        self.sessions: set[str] = set()
        self.prompts: list[tuple[str, str, str | None]] = []
        self.prompt_parts: list[list[dict]] = []  # the file parts of each prompt
        self.sent_messages: dict[tuple[str, str], str] = {}
        self.completion = "done"
        # `stop_service("agent")` puts the agent to sleep; the next `stack_up` wakes it.
        self.agent_asleep = False
        self.title = ""  # the session title get_session reports

    # projects.runtime
    def render_stack(self, project, **kwargs):
        self.calls.append(("render", project.id))

    def stack_up(self, project, **kwargs):
        self.calls.append(("up", project.id))
        if self.up_error is not None:
            raise self.up_error
        self.agent_asleep = False

    def check_ready(self, project):
        from doce.docker.health import Readiness

        self.calls.append(("check_ready", project.id))
        return Readiness(self.ready.preview, self.ready.agent and not self.agent_asleep)

    def preview_answers(self, project):
        self.calls.append(("probe preview", project.id))
        return self.ready.preview

    def agent_answers(self, project):
        self.calls.append(("probe agent", project.id))
        return self.ready.agent and not self.agent_asleep

    def stop_service(self, project, service):
        self.calls.append((f"stop {service}", project.id))
        self.agent_asleep = self.agent_asleep or service == "agent"

    def stack_stop(self, project, **kwargs):
        self.calls.append(("stop", project.id))
        if self.stop_error is not None:
            raise self.stop_error

    def restart_service(self, project, service):
        self.calls.append((f"restart {service}", project.id))

    def stack_down(self, project, *, delete=False):
        self.calls.append(("down" + (" delete" if delete else ""), project.id))

    def delete_files(self, project):
        self.calls.append(("delete files", project.id))
        import shutil

        shutil.rmtree(project.root_dir, ignore_errors=True)

    # projects.ports / projects.scaffold
    def ensure_ports(self, project):
        if project.preview_port is None:
            project.preview_port, project.agent_port = 47000, 47001
            Project.objects.filter(pk=project.pk).update(preview_port=47000, agent_port=47001)
        return project.preview_port, project.agent_port

    def scaffold_site(self, project):
        self.calls.append(("scaffold", project.id))
        project.site_dir.mkdir(parents=True, exist_ok=True)
        return True

    # the agent (doce.opencode)
    def client_for_project(self, project):
        return self if project.agent_port else None

    def create_session(self, *, title=None, permission=None):
        from types import SimpleNamespace

        session_id = f"ses_{len(self.sessions) + 1}"
        self.sessions.add(session_id)
        self.calls.append(("session create", session_id))
        return SimpleNamespace(id=session_id)

    def get_session(self, session_id):
        from doce.opencode.errors import OpencodeError, make_diagnostic

        if session_id not in self.sessions:
            raise OpencodeError(
                make_diagnostic("unknown", "no such session", status_code=404, retryable=False)
            )
        from types import SimpleNamespace

        return SimpleNamespace(id=session_id, title=self.title)

    def prompt_async(self, session_id, text, *, model=None, parts=None, message_id=None):
        self.calls.append(("prompt", session_id))
        self.prompts.append((session_id, text, model))
        self.prompt_parts.append(list(parts or []))
        if message_id:
            self.sent_messages[(session_id, message_id)] = text

    def get_message(self, session_id, message_id):
        from doce.opencode.errors import OpencodeError, make_diagnostic
        from doce.opencode.models import MessageWithParts

        if (session_id, message_id) not in self.sent_messages:
            raise OpencodeError(
                make_diagnostic("unknown", "no such message", status_code=404, retryable=False)
            )
        info = {"id": message_id, "role": "user", "time": {"created": 1_000}}
        return MessageWithParts.model_validate({"info": info})

    def check_completion(self, client, session_id, *, since_ms, busy_seen=False):
        from doce.opencode.completion import CompletionCheck

        self.calls.append(("check completion", session_id))
        return CompletionCheck(self.completion, busy_seen=busy_seen)

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.calls]


@pytest.fixture
def fake_runtime(monkeypatch):
    """Replace Docker and the agent for the project job handlers (see `FakeRuntime`)."""
    from projects import jobs, runtime

    fake = FakeRuntime()
    for name in (
        "render_stack",
        "stack_up",
        "check_ready",
        "preview_answers",
        "agent_answers",
        "stack_stop",
        "stop_service",
        "restart_service",
    ):
        monkeypatch.setattr(runtime, name, getattr(fake, name))
    # One probe per run: a readiness wait gives the worker back at once when not ready.
    monkeypatch.setattr(jobs, "PROBE_SLICE_SECONDS", 0.0)
    monkeypatch.setattr(runtime, "stack_down", fake.stack_down)
    monkeypatch.setattr(runtime, "delete_files", fake.delete_files)
    for name in ("ensure_ports", "scaffold_site", "client_for_project", "check_completion"):
        monkeypatch.setattr(jobs, name, getattr(fake, name))
    return fake


def make_project(owner, status=Project.Status.RUNNING, **fields) -> Project:
    """A project row of `owner` (no files, no containers); `fields` override the defaults
    (a running project's agent is ready unless `agent_state` says otherwise)."""
    if status == Project.Status.RUNNING:
        fields.setdefault("agent_state", AgentState.READY)
    return Project.objects.create(
        owner=owner, name="Site", prompt="p", model=MODEL, status=status, **fields
    )


def project_jobs(project) -> list[tuple[str, str]]:
    """(type, state) of the project's jobs (a `Project` or its id), oldest first."""
    project_id = getattr(project, "id", project)
    return list(
        Job.objects.filter(serial_key=f"project:{project_id}")
        .order_by("id")
        .values_list("type", "state")
    )
