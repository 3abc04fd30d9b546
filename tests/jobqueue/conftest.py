"""Queue test fixtures.

The queue tests run twice: on SQLite (the default suite) and on Postgres (`make test` runs
`tests/jobqueue` again with DATABASE_URL pointing at the machine's Postgres). Tests marked
`postgres` need Postgres as Django's database and are skipped in the SQLite pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

import tests.jobqueue.handlers as handlers
from jobqueue.worker import Worker

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _backend_pass(request):
    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        pytest.skip("needs Postgres as the Django database: runs in make test's Postgres pass")


@pytest.fixture(autouse=True)
def _fresh_observations():
    handlers.SEEN.clear()
    handlers.STARTED.clear()


@pytest.fixture
def worker():
    """An unstarted worker: tests call `worker.run_one()` to claim and run one job."""
    return Worker(worker_id="test-worker", concurrency=1, housekeeping=False, lease_seconds=60)


def database_url() -> str:
    """DATABASE_URL of the test database, for worker subprocesses."""
    conf = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{conf['NAME']}"
    host = conf.get("HOST") or "127.0.0.1"
    port = conf.get("PORT") or 5432
    return f"postgres://{conf['USER']}@{host}:{port}/{conf['NAME']}"


def worker_env(record_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DOCE_DATA_DIR": str(django_settings.DATA_DIR),
        "DOCE_TEST_RECORD_DIR": str(record_dir),
        "DOCE_LOG_LEVEL": "WARNING",
        "DOCE_LOG_FORMAT": "json",
        "PYTHONPATH": str(ROOT),
    }
    env.update(extra)
    return env


def start_worker_process(record_dir: Path, *args: str, **env: str) -> subprocess.Popen:
    """Start `run_worker` (with the test handlers) in a subprocess against the test DB."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.jobqueue.worker_main", *args],
        cwd=ROOT,
        env=worker_env(record_dir, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02):
    """Poll `predicate()` until truthy (returned) or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture(scope="session", autouse=True)
def _close_stray_postgres_sessions(django_db_setup, django_db_blocker):
    """Let pytest-django drop the Postgres test database at the end of the run.

    Connections opened in threads (channels' database_sync_to_async pool) outlive their
    tests; Postgres refuses to drop a database that still has sessions.
    """
    yield
    with django_db_blocker.unblock():
        if connection.vendor != "postgresql":
            return
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
