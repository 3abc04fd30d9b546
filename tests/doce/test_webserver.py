"""The real web server (`python -m doce.webserver`, what `manage.py serve` runs): a WebSocket
message over `DOCE_WS_MAX_MESSAGE_BYTES` gets a closing handshake with 1009, where plain
daphne drops the TCP connection (the browser saw 1006 and no reason)."""

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
print(session.session_key)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A migrated data dir, alice's session key, and the web server on a free port."""
    data_dir = tmp_path_factory.mktemp("webserver")
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
        "DOCE_DATA_DIR": str(data_dir),
        "DOCE_PORT": str(port),
        "DOCE_PUBLIC_URL": f"http://localhost:{port}",
        "DOCE_WS_MAX_MESSAGE_BYTES": str(LIMIT),
        "DOCE_LOG_LEVEL": "WARNING",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, timeout=90)
    session_key = (
        subprocess.run(
            [*manage, "shell", "-c", SIGN_IN],
            env=env,
            check=True,
            timeout=60,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    log = (data_dir / "server.log").open("wb")
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
        yield port, session_key, data_dir / "server.log"
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


@pytest.fixture
def page(server):
    from playwright.sync_api import sync_playwright

    port, session_key, _log = server
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = chromium.new_context()
        context.add_cookies(
            [{"name": "sessionid", "value": session_key, "domain": "localhost", "path": "/"}]
        )
        page = context.new_page()
        page.goto(f"http://localhost:{port}/api/openapi.json")
        yield page
        context.close()
        chromium.close()


def test_it_closes_an_oversized_message_with_1009(server, page):
    _port, _session_key, log = server
    # Under the limit: answered with an error on a socket that stays open.
    under = page.evaluate(PROBE, ["/ws/projects/events/", LIMIT - 100])
    assert under == {"code": "open", "clean": True, "replies": ["unexpected_message"]}
    # Over it (and over daphne's own default of 1 MiB): closed with 1009. (Chromium calls
    # the close unclean: the server stops reading the oversized frame, so the TCP stream
    # ends before the closing handshake completes; the code still arrives.)
    for size in (LIMIT + 1, 2 * 1024 * 1024):
        over = page.evaluate(PROBE, ["/ws/projects/events/", size])
        assert (over["code"], over["replies"]) == (1009, []), size
    assert '"level": "error"' not in log.read_text(errors="replace")
