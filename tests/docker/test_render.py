"""Rendering a project's stack files."""

from __future__ import annotations

import json
import stat
import subprocess
from unittest import mock

import pytest

from doce.docker.compose import command_env, compose_argv
from projects import runtime
from projects.models import Project
from projects.scaffold import scaffold_site


@pytest.fixture
def project(db, bob, settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    settings.DOCE_CACHE_DIR = tmp_path / "cache"
    settings.DOCE_EXTRA_CA_BUNDLE = ""
    project = Project.objects.create(
        owner=bob,
        name="--volumes; rm -rf /",
        prompt="p",
        model="local/tiny",
        preview_port=47200,
        agent_port=47201,
    )
    with mock.patch("projects.scaffold._copy_prewarmed_modules"):
        scaffold_site(project)
    return project


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _env(path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line)


def test_it_renders_the_stack_files_privately(project):
    stack = runtime.render_stack(
        project,
        extra_env={"LOCAL_API_KEY": "sk-local-123456789"},
        provider_config={
            "local": {
                "npm": "@ai-sdk/openai-compatible",
                "options": {"baseURL": "http://10.0.0.9:8080/v1", "apiKey": "{env:LOCAL_API_KEY}"},
                "models": {"tiny": {"name": "Tiny"}},
            }
        },
    )
    directory = stack.directory
    for name in ("docker-compose.yml", "stack.env", "agent.env", "runtime.env"):
        assert _mode(directory / name) == 0o600, name
    assert _mode(directory / "agent-config" / "opencode.json") == 0o600
    assert _mode(directory / "agent-config") == 0o700
    assert stack.compose_project == f"doce_{project.id}"

    variables = _env(directory / "stack.env")
    assert variables["PREVIEW_PORT"] == "47200"
    assert variables["AGENT_PORT"] == "47201"
    assert variables["SITE_DIR"] == str(project.site_dir)
    assert variables["PROJECT_ID"] == project.id

    agent_env = _env(directory / "agent.env")
    assert agent_env["OPENCODE_SERVER_PASSWORD"] == project.agent_password
    assert agent_env["LOCAL_API_KEY"] == "sk-local-123456789"
    project.refresh_from_db()
    assert len(project.agent_password) >= 32

    config = json.loads((directory / "agent-config" / "opencode.json").read_text())
    assert config["model"] == "local/tiny"
    assert config["provider"]["local"]["options"]["apiKey"] == "{env:LOCAL_API_KEY}"

    # Secrets live only in the agent's private files, never in the site or the compose file.
    for public in (
        directory / "docker-compose.yml",
        directory / "stack.env",
        project.site_dir / "opencode.json",
    ):
        text = public.read_text()
        assert project.agent_password not in text
        assert "sk-local-123456789" not in text


def test_it_renders_a_stack_compose_accepts(project, settings):
    settings.DOCE_EXTRA_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
    stack = runtime.render_stack(project)
    assert [f.name for f in stack.compose_files] == ["docker-compose.yml", "extra-ca.yml"]

    done = subprocess.run(
        compose_argv(stack, "config"),
        capture_output=True,
        text=True,
        env=command_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    config = done.stdout
    assert "127.0.0.1:47201:3000/tcp" in config or "127.0.0.1:47201:3000" in config
    assert "47200:4321" in config
    assert "dev.doce.project: " + project.id in config
    assert "NODE_EXTRA_CA_CERTS: /etc/doce/extra-ca.pem" in config
    assert "/etc/ssl/certs/ca-certificates.crt:/etc/doce/extra-ca.pem:ro" in config
    assert "mem_limit" in config
    assert "docker.sock" not in config
    assert "privileged" not in config
    # The project's name never reaches compose.
    assert "rm -rf" not in " ".join(compose_argv(stack, "up"))


def test_it_drops_the_ca_file_when_the_setting_goes(project, settings):
    settings.DOCE_EXTRA_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
    runtime.render_stack(project)
    settings.DOCE_EXTRA_CA_BUNDLE = ""
    stack = runtime.render_stack(project)
    assert [f.name for f in stack.compose_files] == ["docker-compose.yml"]


@pytest.mark.parametrize(
    "extra_env",
    [
        {"OPENCODE_SERVER_PASSWORD": "mine"},
        {"HOME": "/"},
        {"BAD NAME": "x"},
        {"--flag": "x"},
        {"KEY": "two\nlines"},
        {"KEY": "has $dollar"},
        {"KEY": "'quoted'"},
    ],
)
def test_it_refuses_env_it_cannot_pass_safely(project, extra_env):
    with pytest.raises(ValueError):
        runtime.render_stack(project, extra_env=extra_env)


def test_it_needs_ports_and_a_site(project):
    project.preview_port = None
    with pytest.raises(ValueError):
        runtime.render_stack(project)
    project.preview_port = 47200
    project.directory = "projects/fedcba9876543210"  # no site on disk there
    with pytest.raises(FileNotFoundError):
        runtime.render_stack(project)


def test_it_refuses_a_stack_name_that_looks_like_a_flag(project):
    project.stack_name = "--remove-orphans"
    with pytest.raises(ValueError):
        runtime.project_stack(project)
