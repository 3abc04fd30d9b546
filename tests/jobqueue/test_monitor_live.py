"""The queue monitor in real Chromium against daphne: rows follow job events without
re-fetching the table (a new job appears, a state change updates its row in place)."""

from __future__ import annotations

import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from jobqueue import cancel_job, enqueue
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.jobqueue.conftest import ROOT, wait_for, worker_env
from tests.ws import session_cookie

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def web(tmp_path):
    """daphne alone (no worker) on the test database; yields its base URL. DEBUG serves the
    static files from the source tree (no collectstatic)."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "doce.asgi:application",
        ],
        cwd=ROOT,
        env=worker_env(
            tmp_path,
            DEBUG="1",
            DOCE_EVENTS_POLL_SECONDS="0.2",
            # The sockets accept only doce's own origin: the page is served from it.
            DOCE_PUBLIC_URL=f"http://localhost:{port}",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: answers(port), timeout=30)
        yield f"http://localhost:{port}"
    finally:
        process.terminate()
        process.wait(15)


def in_thread(fn, *args, **kwargs):
    """Run a database call outside Playwright's event loop (Django refuses ORM calls in a
    thread running one) and return its result."""

    def call():
        try:
            return fn(*args, **kwargs)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()


def test_it_updates_rows_from_job_events_without_refetching(alice, web):
    from playwright.sync_api import sync_playwright

    first = enqueue("test.noop", {"n": 1}, serial_key="project:alice")
    name, value = session_cookie(alice).decode().split("=", 1)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = chromium.new_context()
        context.add_cookies([{"name": name, "value": value, "url": web}])
        page = context.new_page()
        page.set_default_timeout(20_000)
        fetched = []
        page.on("request", lambda request: "partial=1" in request.url and fetched.append(request))
        page.goto(f"{web}/queue/")
        page.wait_for_selector(f"#job-{first.pk}")
        page.wait_for_timeout(500)  # the socket is open once the page settles

        second = in_thread(enqueue, "test.noop", {"n": 2}, serial_key="project:alice")
        row = page.wait_for_selector(f"#job-{second.pk}")
        assert "Queued" in row.inner_text()
        assert page.locator("[data-job-row]").first.get_attribute("id") == f"job-{second.pk}"

        in_thread(cancel_job, first)
        page.wait_for_selector(f"#job-{first.pk} .badge-cancelled")
        retry = page.locator(f"#job-{first.pk} form[action='/queue/jobs/{first.pk}/retry']")
        assert retry.count() == 1
        assert page.locator(f"#job-{first.pk} form[action$='/cancel']").count() == 0
        assert fetched == []
        context.close()
        chromium.close()
