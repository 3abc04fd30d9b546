"""Settings load in a fresh interpreter, so each case gets its own environment."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from doce.config import Env

ROOT = Path(__file__).resolve().parents[2]


def load_settings(tmp_path, **overrides) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCE_", "DATABASE_URL"))}
    env.update({"DOCE_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "doce.settings"})
    env.update(overrides)
    code = "import django; django.setup(); from django.conf import settings; print('ok')"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_it_stops_on_a_malformed_database_url(tmp_path):
    result = load_settings(tmp_path, DATABASE_URL="mysqlish://nowhere")
    assert result.returncode != 0
    assert "DATABASE_URL has a malformed value" in result.stderr


def test_it_stops_on_a_malformed_boolean(tmp_path):
    result = load_settings(tmp_path, DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG has a malformed value" in result.stderr


def test_it_generates_and_keeps_a_secret_key(tmp_path):
    assert load_settings(tmp_path).returncode == 0
    key_file = tmp_path / "secret_key"
    first = key_file.read_text()
    assert len(first) >= 50
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert load_settings(tmp_path).returncode == 0
    assert key_file.read_text() == first


def test_it_refuses_a_short_secret_key_outside_debug(tmp_path):
    result = load_settings(tmp_path, SECRET_KEY="short-but-set-by-hand", DEBUG="false")
    assert result.returncode != 0
    assert "SECRET_KEY is too weak: 21 characters" in result.stderr
    assert "secrets.token_urlsafe(50)" in result.stderr  # how to make a good one
    # Fifty characters of one letter are refused too (Django's distinct-character rule).
    result = load_settings(tmp_path, SECRET_KEY="a" * 60)
    assert result.returncode != 0 and "SECRET_KEY is too weak" in result.stderr
    # DEBUG (a developer's machine) accepts it; a long random key is accepted everywhere.
    assert load_settings(tmp_path, SECRET_KEY="short-but-set-by-hand", DEBUG="true").returncode == 0
    assert load_settings(tmp_path, SECRET_KEY="k3y-s" * 11).returncode == 0
    assert not (tmp_path / "secret_key").exists()  # a configured key is never replaced


def test_it_configures_sqlite_with_wal_and_immediate_transactions(tmp_path):
    config = Env().database("DATABASE_URL_UNSET_FOR_TEST", f"sqlite:///{tmp_path / 'x.db'}")
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]
    assert config["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_it_accepts_a_postgres_url(monkeypatch):
    monkeypatch.setenv("DOCE_TEST_DB", "postgres://doce:pw@db.internal:5432/doce")
    config = Env().database("DOCE_TEST_DB", "sqlite:///unused")
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["HOST"], config["PORT"], config["NAME"]) == ("db.internal", 5432, "doce")


def test_it_stops_on_a_pool_too_small_for_a_worker(tmp_path):
    postgres = {"DATABASE_URL": "postgres://doce@127.0.0.1:5432/doce"}
    small = load_settings(tmp_path, **postgres, DOCE_DB_POOL_SIZE="3", DOCE_QUEUE_CONCURRENCY="2")
    assert small.returncode != 0
    assert "DOCE_DB_POOL_SIZE (3) must be at least DOCE_QUEUE_CONCURRENCY + 2" in small.stderr
    assert load_settings(tmp_path, **postgres, DOCE_DB_POOL_SIZE="4").returncode == 0


def test_it_pools_postgres_connections_when_asked(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCE_TEST_DB", "postgres://doce:pw@db.internal:5432/doce")
    pooled = Env().database("DOCE_TEST_DB", "sqlite:///unused", pool_size=7)
    assert pooled["CONN_MAX_AGE"] == 0  # Django refuses a pool with persistent connections
    assert pooled["OPTIONS"]["pool"]["max_size"] == 7
    assert pooled["OPTIONS"]["pool"]["min_size"] <= 7
    unpooled = Env().database("DOCE_TEST_DB", "sqlite:///unused", pool_size=0)
    assert "pool" not in unpooled.get("OPTIONS", {})
    sqlite = Env().database("DOCE_TEST_DB_UNSET", f"sqlite:///{tmp_path / 'x.db'}", pool_size=7)
    assert "pool" not in sqlite["OPTIONS"]


@pytest.mark.parametrize(
    ("reader", "value"),
    [
        ("int", "ten"),
        ("int", "-1"),
        ("float", "fast"),
        ("port_range", "9000"),
        ("port_range", "5-2"),
    ],
)
def test_it_names_the_variable_in_every_parse_error(monkeypatch, reader, value):
    monkeypatch.setenv("DOCE_SOMETHING", value)
    env = Env()
    args = {"port_range": (1, 2)}.get(reader, 1)
    with pytest.raises(ImproperlyConfigured, match="DOCE_SOMETHING"):
        getattr(env, reader)("DOCE_SOMETHING", args)


def test_it_passes_the_deploy_checks_with_production_settings(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCE_", "DATABASE_URL"))}
    env.update(
        {
            "DOCE_DATA_DIR": str(tmp_path),
            "DEBUG": "false",
            "DOCE_HTTPS": "true",
            "SECRET_KEY": "k" * 20 + "-production-like-secret-key-with-enough-entropy-" + "z" * 10,
            "ALLOWED_HOSTS": "doce.example.org",
        }
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_gives_each_web_slot_its_own_ports(tmp_path):
    from doce.config import WebSlot, web_slots

    assert web_slots(8001, 1) == [WebSlot(0, 8001, 0)]
    assert web_slots(8003, 2) == [WebSlot(0, 8003, 8005), WebSlot(1, 8004, 8006)]


def test_it_refuses_web_slots_that_collide_with_the_edge_or_the_gateway(tmp_path):
    result = load_settings(
        tmp_path, DOCE_WEB_REPLICAS="2", DOCE_WEB_PORT="8001", DOCE_GATEWAY_BIND="127.0.0.1"
    )
    assert result.returncode != 0
    assert "web slot 1's port 8002 is already DOCE_GATEWAY_PORT's" in result.stderr


def test_several_web_processes_need_the_gateway_addresses(tmp_path):
    result = load_settings(tmp_path, DOCE_WEB_REPLICAS="2")
    assert result.returncode != 0
    assert "set DOCE_GATEWAY_BIND" in result.stderr
    assert (
        load_settings(tmp_path, DOCE_WEB_REPLICAS="2", DOCE_GATEWAY_BIND="127.0.0.1").stdout.strip()
        == "ok"
    )
