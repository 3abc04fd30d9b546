"""Shared pytest fixtures: personas (alice, bob, charlie) and the real-component markers.

Markers `docker`, `postgres`, `redis` and `opencode` name a real component a test needs.
When the component is missing the test is skipped, except in CI: under
`DOCE_REQUIRE_DOCKER=1` a missing component fails the test instead, so a green CI run
means the real thing was exercised.
"""

from __future__ import annotations

import json
import os

import pytest
from django.conf import settings

# No warm pool unless a test turns it on: stacks started ahead of time would change what
# every other test sees (ports, containers, jobs). Subprocesses (e2e servers) inherit it.
os.environ.setdefault("DOCE_WARM_POOL_SIZE", "0")

from doce.docker.engine import engine_status
from doce.logging import configure_logging

REQUIRE_REAL = settings.DOCE_REQUIRE_DOCKER
POSTGRES_URL = os.environ.get(
    "DOCE_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("DOCE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

_probe_cache: dict[str, str | None] = {}


def _docker_missing() -> str | None:
    status = engine_status(timeout=5)
    return None if status.reachable else status.error


def _postgres_missing() -> str | None:
    import psycopg

    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"Postgres at DOCE_TEST_POSTGRES_URL unreachable: {exc.__class__.__name__}"
    return None


def _redis_missing() -> str | None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        return f"Redis at DOCE_TEST_REDIS_URL unreachable: {exc.__class__.__name__}"
    return None


_PROBES = {"docker": _docker_missing, "postgres": _postgres_missing, "redis": _redis_missing}


def missing_component(name: str) -> str | None:
    """Why component `name` is unavailable (cached per run), or None when it answers."""
    if name not in _probe_cache:
        _probe_cache[name] = _PROBES[name]()
    return _probe_cache[name]


def pytest_runtest_setup(item: pytest.Item) -> None:
    for name in _PROBES:
        if item.get_closest_marker(name) is None:
            continue
        reason = missing_component(name)
        if reason is None:
            continue
        if REQUIRE_REAL:
            pytest.fail(f"{name} is required (DOCE_REQUIRE_DOCKER=1): {reason}", pytrace=False)
        pytest.skip(f"{name} unavailable: {reason}")


@pytest.fixture(autouse=True)
def _test_settings(settings):
    settings.DOCE_WARM_POOL_SIZE = 0  # tests of the pool turn it on
    # Hashing strength is not what tests measure; scrypt would make them slow.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Tests render templates without running collectstatic first.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def json_logs(capsys):
    """Log lines as dicts: call `json_logs.start()` in the test body (the handler binds the
    stdout of that phase), then `json_logs()` for what was logged since."""

    class Capture:
        def start(self):
            configure_logging(level="INFO", fmt="json")

        def __call__(self):
            out = capsys.readouterr().out
            return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    yield Capture()
    configure_logging(level="WARNING", fmt="json")


@pytest.fixture
def alice(django_user_model):
    """Alice: an administrator (the first user created at setup)."""
    return django_user_model.objects.create_superuser("alice", "alice@example.org", "alice-pass-1")


@pytest.fixture
def bob(django_user_model):
    """Bob: a regular member with his own projects."""
    return django_user_model.objects.create_user("bob", "bob@example.org", "bob-pass-1")


@pytest.fixture
def charlie(django_user_model):
    """Charlie: a member with no projects."""
    return django_user_model.objects.create_user("charlie", "charlie@example.org", "charlie-pass-1")


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def bob_client(client, bob):
    client.force_login(bob)
    return client
