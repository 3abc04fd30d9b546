"""doce's own compose file and Dockerfile (for running doce itself in containers)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
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
