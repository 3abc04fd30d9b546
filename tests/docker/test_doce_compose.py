"""doce's own compose file and Dockerfile (for running doce itself in containers)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml
from django.conf import settings

from doce.docker.compose import command_env

COMPOSE_DIR = settings.BASE_DIR / "compose"


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="needs docker-compose")
def test_it_is_a_valid_compose_file(tmp_path):
    env_file = tmp_path / "doce.env"
    env_file.write_text("SECRET_KEY=from-the-env-file\n")
    done = subprocess.run(
        [shutil.which("docker-compose"), "-f", str(COMPOSE_DIR / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**command_env(), "DOCE_ENV_FILE": str(env_file), "DOCE_DATA_DIR": "/srv/doce"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    config = done.stdout
    assert "web:" in config and "worker:" in config
    assert "/var/run/docker.sock:/var/run/docker.sock" in config
    # The data directory has the same path inside and out, so project bind mounts work.
    assert "/srv/doce:/srv/doce" in config
    assert "run_worker" in config
    # The web service runs serve: daphne behind the edge (Caddy), the worker on its own.
    assert "manage.py serve" in config
    assert "DOCE_EMBEDDED_WORKER: 'false'" in config or 'DOCE_EMBEDDED_WORKER: "false"' in config


def test_its_image_copies_no_local_secrets_or_data():
    dockerfile = (COMPOSE_DIR / "Dockerfile").read_text()
    assert "COPY . ." not in dockerfile
    sources = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY")]
    assert ".env" not in sources and "data" not in sources


def _scaled_config(tmp_path, *files: str) -> dict:
    env_file = tmp_path / "doce.env"
    env_file.write_text("SECRET_KEY=from-the-env-file\n")
    arguments = [shutil.which("docker-compose") or "docker-compose"]
    for name in files:
        arguments += ["-f", str(COMPOSE_DIR / name)]
    done = subprocess.run(
        [*arguments, "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **command_env(),
            "DOCE_ENV_FILE": str(env_file),
            "DOCE_DATA_DIR": "/srv/doce",
            "DOCE_POSTGRES_PASSWORD": "pw",
        },
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)["services"]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="needs docker-compose")
def test_the_scaled_compose_file_runs_every_piece_once_and_only_workers_get_docker(tmp_path):
    """The public-image configuration (official Postgres, Redis and Python images): not
    brought up on the CI machine, which has no registry to pull them from; checked here."""
    services = _scaled_config(tmp_path, "docker-compose.scale.yml")
    assert set(services) == {"postgres", "redis", "migrate", "edge", "web", "worker"}
    for name, service in services.items():
        mounts = " ".join(str(v) for v in service.get("volumes", []))
        # Containers are run by workers, and by `migrate` preparing the runtime once.
        assert ("docker.sock" in mounts) == (name in ("worker", "migrate")), name
        if name in ("migrate", "edge", "web", "worker"):
            assert "/srv/doce:/srv/doce" in mounts, name
            assert service["image"] == "doce:latest", name
            assert service["network_mode"] == "host", name
    # One image for every doce service, built once, from the Dockerfile's public default.
    assert [name for name, service in services.items() if "build" in service] == ["migrate"]
    assert "args" not in services["migrate"]["build"]
    assert "ARG BASE_IMAGE=python:3.11-slim-bookworm" in (COMPOSE_DIR / "Dockerfile").read_text()
    assert "prepare_runtime $$DOCE_PREPARE_ARGS" in services["migrate"]["command"][-1]
    assert services["migrate"]["environment"]["DOCE_PREPARE_ARGS"] == ""
    assert "--worker-id-from-container" in services["worker"]["command"]
    assert services["web"]["scale"] == 2 and services["worker"]["scale"] == 2
    for name in ("edge", "web", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
        assert services[name]["restart"] == "unless-stopped"
        assert services[name]["environment"]["REDIS_URL"].startswith("redis://127.0.0.1:")
        assert services[name]["environment"]["DATABASE_URL"].startswith("postgres://doce:pw@")
    assert services["migrate"]["restart"] == "no"
    for name in ("postgres", "redis", "edge", "web", "worker"):
        assert "healthcheck" in services[name], name
    # The worker's check reads the file its heartbeats touch.
    beat = services["worker"]["command"][services["worker"]["command"].index("--beat-file") + 1]
    assert services["worker"]["healthcheck"]["test"][-1] == beat
    assert services["web"]["command"][-2:] == ["--only", "web"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="needs docker-compose")
def test_offline_the_same_services_build_from_the_debian_base(tmp_path):
    services = _scaled_config(tmp_path, "docker-compose.scale.yml", "docker-compose.offline.yml")
    assert services["postgres"]["image"] == "doce-postgres:15"
    assert services["redis"]["image"] == "doce-redis:7"
    for name in ("postgres", "redis", "migrate"):
        assert services[name]["build"]["args"]["BASE_IMAGE"] == "doce-base:bookworm", name
    for name in ("edge", "web", "worker"):
        assert "build" not in services[name] and services[name]["image"] == "doce:latest"
    # Project images missing at start are built the offline way too.
    assert services["migrate"]["environment"]["DOCE_PREPARE_ARGS"] == "--offline"
