"""End-to-end fixtures: doce started the README's way (`make run`), driven by real Chromium.

`doce_server` starts `make run` with its own data directory and a free port and yields its
base URL; `browser_page` is a Playwright page in Debian's Chromium. Screenshots go to
`test-artifacts/e2e/` (kept by CI as artifacts).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
# Lets the tests read /healthz's details (anonymous callers get its status only).
HEALTHZ_TOKEN = "e2e-healthz-token-3b8d"
CHROMIUM = os.environ.get("DOCE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# `make run` builds missing images (offline here) and prewarms the template first.
START_TIMEOUT_S = 600


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DoceServer:
    """A running `make run`: `url`, `data_dir`, and `log()` for its output so far."""

    def __init__(self, url: str, data_dir: Path, log_path: Path) -> None:
        self.url = url
        self.data_dir = data_dir
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_doce(tmp_path_factory, **extra_env: str):
    """Start `make run` (its own data directory and ports) and yield a `DoceServer` whose
    `url` is doce's public URL behind the edge; `DOCE_TLS_INTERNAL=true` in `extra_env`
    serves it over HTTPS from Caddy's internal CA."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM} (apt-get install chromium)", pytrace=False)
    data_dir = tmp_path_factory.mktemp("doce-e2e-data")
    port, web_port = free_port(), free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DOCE_DATA_DIR", "DATABASE_URL"))
    }
    env.update(
        {
            "DOCE_DATA_DIR": str(data_dir),
            "DOCE_PORT": str(port),  # the edge: doce and every preview on this one port
            "DOCE_WEB_PORT": str(web_port),  # daphne, behind the edge
            "DOCE_LOG_FORMAT": "json",
            "DOCE_OFFLINE_IMAGES": "1",  # no container registry on CI machines
            # The e2e viewer leaves and comes back; don't let idle stop race the test.
            "DOCE_IDLE_STOP_SECONDS": "600",
            "DOCE_HEALTHZ_TOKEN": HEALTHZ_TOKEN,
            **extra_env,
        }
    )
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["make", "run"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    # doce accepts WebSockets only from its own origin (DOCE_PUBLIC_URL: localhost:<port>).
    scheme = "https" if extra_env.get("DOCE_TLS_INTERNAL") == "true" else "http"
    server = DoceServer(f"{scheme}://localhost:{port}", data_dir, log_path)
    try:
        _wait_until_up(server, process)
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def doce_server(tmp_path_factory):
    """A fresh doce (its own data directory and port) for each test module."""
    yield from start_doce(tmp_path_factory)


def _wait_until_up(server: DoceServer, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"`make run` exited early:\n{server.log()[-3000:]}", pytrace=False)
        try:
            # Through the edge: up once daphne answers behind it (not Caddy's 502).
            # (Caddy's internal CA in the HTTPS e2e: not in the trust store.)
            answer = httpx.get(server.url + "/healthz", timeout=2, verify=False)  # noqa: S501
            if answer.status_code in (200, 503):
                return
            time.sleep(0.3)
        except httpx.TransportError:
            time.sleep(0.3)
    pytest.fail(f"doce did not answer in {START_TIMEOUT_S} s:\n{server.log()[-3000:]}")


def is_csp_violation(text: str) -> bool:
    """True for Chromium's console report of something the Content-Security-Policy refused."""
    return "Content Security Policy" in text


@pytest.fixture
def browser_page():
    """A page in a fresh Chromium. Playwright lives only for the test: its sync API runs an
    event loop in the main thread, which would break async tests run after it.

    A Content-Security-Policy violation or a mixed-content warning reported in the console
    (of the page or any of its frames) fails the test: every page must work under doce's
    policy as it is, and over HTTPS nothing may load over plain HTTP. Certificates of
    Caddy's internal CA (the HTTPS e2e) are accepted.
    """
    from playwright.sync_api import sync_playwright

    violations: list[str] = []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = chromium.new_context(
            viewport={"width": 1280, "height": 860}, ignore_https_errors=True
        )
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on(
            "console",
            lambda message: (
                violations.append(f"{page.url}: {message.text}")
                if is_csp_violation(message.text) or "Mixed Content" in message.text
                else None
            ),
        )
        yield page
        context.close()
        chromium.close()
    assert violations == [], "CSP or mixed-content reports:\n" + "\n".join(violations)


@pytest.fixture
def shoot(request):
    """`shoot(page, "stage")` saves a screenshot named after the test and the stage."""
    folder = ARTIFACTS / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    counter = iter(range(1, 1000))

    def take(page, stage: str) -> Path:
        path = folder / f"{next(counter):02d}-{stage}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture(scope="session")
def scripted_model_url():
    """A scripted OpenAI-compatible model on this host's loopback only (like Ollama's
    default): agent containers cannot reach it, only doce's model gateway can.

    Yields the base URL as a user would type it (`http://127.0.0.1:<port>/v1`).
    """
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.scripted_model", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(url + "/models", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
