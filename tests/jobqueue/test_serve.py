"""`manage.py serve` starts the worker next to the web server and the edge; Ctrl-C stops all
cleanly."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest

from jobqueue.models import WorkerHeartbeat
from tests.jobqueue.conftest import ROOT, wait_for, worker_env

pytestmark = pytest.mark.django_db(transaction=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_it_runs_web_and_worker_and_ctrl_c_stops_both(tmp_path):
    port, web_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve"],
        cwd=ROOT,
        env=worker_env(tmp_path, DOCE_PORT=str(port), DOCE_WEB_PORT=str(web_port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        worker = wait_for(lambda: WorkerHeartbeat.objects.first(), timeout=90)
        wait_for(lambda: _answers(port) and _answers(web_port), timeout=90)  # edge, daphne
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends to the command
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            # SIGINT first: serve stops its children (killing serve would orphan them).
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    worker.refresh_from_db()
    assert worker.stopped_at is not None  # the worker stopped gracefully, not killed
    assert not _answers(port) and not _answers(web_port)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
