"""The real web server (`python -m doce.webserver`, what `manage.py serve` runs) and the
browser's socket helper (`doce.socket` in `static/js/doce.js`) in Chromium.

- A WebSocket message over `DOCE_WS_MAX_MESSAGE_BYTES` is closed with 1009, where plain
  daphne drops the TCP connection (the browser saw 1006 and no reason).
- The helper reconnects after a drop, resuming with `?after=<last event id>`, so the page
  gets every event once; a final close code (4404) stops it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 64 * 1024
WEBSERVER = [sys.executable, "-m", "doce.webserver", "-v", "0"]
MANAGE = [sys.executable, str(ROOT / "manage.py")]

pytestmark = pytest.mark.timeout(120)

SIGN_IN = """
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.auth import SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY
user = get_user_model().objects.create_user("alice", password="alice-pass-1")
session = SessionStore()
session[SESSION_KEY] = str(user.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.save()
from projects.models import Project
project = Project.objects.create(owner=user, name="Site", prompt="p")
print(session.session_key, project.id)
"""
EMIT = """
from doce import events
events.emit("project:{project_id}", "project.renamed", {{"name": "{name}"}})
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, port: int, env: dict, log_path: Path) -> None:
        self.port, self.env, self.log_path = port, env, log_path
        self.session_key = self.project_id = ""

    def shell(self, code: str) -> str:
        """Run `code` in `manage.py shell` against the server's database; its output."""
        done = subprocess.run(
            [*MANAGE, "shell", "-c", code],
            env=self.env,
            check=True,
            timeout=60,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""

    def errors_logged(self) -> list[str]:
        return [
            line for line in self.log_path.read_text().splitlines() if '"level": "error"' in line
        ]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The web server on a free port with a migrated data dir, alice signed in (`session_key`)
    and her project (`project_id`)."""
    data_dir = tmp_path_factory.mktemp("webserver")
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
        "DOCE_DATA_DIR": str(data_dir),
        "DOCE_PORT": str(port),
        "DOCE_PUBLIC_URL": f"http://localhost:{port}",
        "DOCE_WS_MAX_MESSAGE_BYTES": str(LIMIT),
        "DOCE_EVENTS_POLL_SECONDS": "0.2",
        "DOCE_LOG_LEVEL": "WARNING",
    }
    server = Server(port, env, data_dir / "server.log")
    subprocess.run([*MANAGE, "migrate", "-v", "0"], env=env, check=True, timeout=90)
    # As `make run` does: pages (the browser's favicon 404 too) name hashed static files.
    subprocess.run(
        [*MANAGE, "collectstatic", "--no-input", "-v", "0"], env=env, check=True, timeout=120
    )
    server.session_key, server.project_id = server.shell(SIGN_IN).split()
    log = server.log_path.open("wb")
    process = subprocess.Popen(
        [*WEBSERVER, "-b", "127.0.0.1", "-p", str(port), "doce.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/openapi.json", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


# Runs in doce's page: opens a socket, sends `size` bytes of text, reports how it ended.
PROBE = """async ([path, size]) => {
  const socket = new WebSocket(`ws://${location.host}${path}`);
  const replies = [];
  socket.onmessage = (event) => replies.push(JSON.parse(event.data).code);
  await new Promise((resolve, reject) => { socket.onopen = resolve; socket.onerror = reject; });
  socket.send('"' + "x".repeat(size) + '"');
  const closed = new Promise((resolve) => socket.onclose = (e) => resolve([e.code, e.wasClean]));
  const timeout = new Promise((resolve) => setTimeout(() => resolve(["open", true]), 3000));
  const [code, clean] = await Promise.race([closed, timeout]);
  socket.close();
  return {code, clean, replies};
}"""


# Records every WebSocket the page opens, so a test can see the URLs and drop one.
RECORD_SOCKETS = """
window.__sockets = [];
const NativeWebSocket = window.WebSocket;
window.WebSocket = class extends NativeWebSocket {
  constructor(url, protocols) { super(url, protocols); window.__sockets.push(this); }
};
"""


@pytest.fixture
def page(server):
    from playwright.sync_api import sync_playwright

    port, session_key = server.port, server.session_key
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # The helper is injected into a JSON page of doce; CSP is tested elsewhere (e2e).
        context = chromium.new_context(bypass_csp=True)
        context.add_cookies(
            [{"name": "sessionid", "value": session_key, "domain": "localhost", "path": "/"}]
        )
        page = context.new_page()
        page.add_init_script(RECORD_SOCKETS)
        page.goto(f"http://localhost:{port}/api/openapi.json")
        page.add_script_tag(path=str(ROOT / "static" / "js" / "doce.js"))
        yield page
        context.close()
        chromium.close()


def test_it_closes_an_oversized_message_with_1009(server, page):
    # Under the limit: answered with an error on a socket that stays open.
    under = page.evaluate(PROBE, ["/ws/projects/events/", LIMIT - 100])
    assert under == {"code": "open", "clean": True, "replies": ["unexpected_message"]}
    # Over it (and over daphne's own default of 1 MiB): closed with 1009. (Chromium calls
    # the close unclean: the server stops reading the oversized frame, so the TCP stream
    # ends before the closing handshake completes; the code still arrives.)
    for size in (LIMIT + 1, 2 * 1024 * 1024):
        over = page.evaluate(PROBE, ["/ws/projects/events/", size])
        assert (over["code"], over["replies"]) == (1009, []), size
    assert server.errors_logged() == []


def test_the_socket_helper_resumes_after_a_drop_and_stops_on_a_final_code(server, page):
    page.evaluate(
        """() => {
          window.received = [];
          window.stops = [];
          doce.eventStream("/ws/projects/events/", (event) => received.push(event), null);
          doce.socket("/ws/nothing/", {onMessage: () => {}, onStop: (code) => stops.push(code)});
        }"""
    )
    page.wait_for_function("window.stops.length === 1")
    assert page.evaluate("window.stops") == [4404]
    page.wait_for_function("window.__sockets[0].readyState === WebSocket.OPEN")
    server.shell(EMIT.format(project_id=server.project_id, name="First"))
    page.wait_for_function("window.received.length === 1")
    first_id = page.evaluate("window.received[0].id")

    page.evaluate("window.__sockets[0].close()")  # a dropped connection
    page.wait_for_function(
        "window.__sockets.length === 3 && window.__sockets[2].readyState === WebSocket.OPEN"
    )
    assert page.evaluate("window.__sockets[2].url").endswith(
        f"/ws/projects/events/?after={first_id}"
    )
    server.shell(EMIT.format(project_id=server.project_id, name="Second"))
    page.wait_for_function("window.received.length === 2")
    names = page.evaluate("window.received.map((event) => event.payload.name)")
    assert names == ["First", "Second"]
    # The stopped socket never came back: three sockets in all (events, 404, events again).
    assert page.evaluate("window.__sockets.map((s) => new URL(s.url).pathname)") == [
        "/ws/projects/events/",
        "/ws/nothing/",
        "/ws/projects/events/",
    ]
    assert server.errors_logged() == []
