import hashlib
from pathlib import Path

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore

from accounts.models import ApiToken, ProviderCredential
from doce.models import Event
from jobqueue.models import Job
from jobqueue.worker import Worker
from projects.models import Project, Viewer

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


def session_cookie(user) -> bytes:
    """A `Cookie` header value signing `user` in (for ASGI-level WebSocket tests)."""
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return f"{django_settings.SESSION_COOKIE_NAME}={session.session_key}".encode()


def ws_communicator(path: str, cookie: bytes | None = None) -> WebsocketCommunicator:
    """A communicator for the full ASGI app (origin check and session auth included)."""
    from doce.asgi import application

    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    if cookie:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, path, headers=headers)


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
