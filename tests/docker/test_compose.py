"""The compose runner: argument lists, validation, environment, timeouts, logging."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from doce.docker import compose
from doce.docker.compose import (
    Stack,
    command_env,
    compose_argv,
    compose_command,
    run_logged,
)
from doce.docker.failures import FailureKind, classify_output
from doce.docker.logs import DockerLog, read_log

PROJECT_ID = "0123456789abcdef"


def _stack(tmp_path: Path, project_id: str = PROJECT_ID) -> Stack:
    return Stack(
        project_id=project_id,
        directory=tmp_path / "stack",
        compose_files=(tmp_path / "stack" / "docker-compose.yml",),
        env_file=tmp_path / "stack" / "stack.env",
        logs_dir=tmp_path / "logs",
    )


@pytest.mark.parametrize(
    "bad_id",
    ["--help", "-p", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0", "../../etc", ""],
)
def test_it_refuses_project_ids_that_are_not_16_hex_chars(tmp_path, bad_id):
    with pytest.raises(ValueError):
        _stack(tmp_path, bad_id)


def test_it_refuses_relative_paths(tmp_path):
    with pytest.raises(ValueError):
        Stack(
            project_id=PROJECT_ID,
            directory=Path("stack"),
            compose_files=(),
            env_file=tmp_path / "x",
            logs_dir=tmp_path,
        )


def test_it_builds_the_same_arguments_for_compose_v1_and_v2(tmp_path, monkeypatch):
    stack = _stack(tmp_path)
    monkeypatch.setattr(compose, "compose_command", lambda: ("docker-compose",))
    v1 = compose_argv(stack, "up", "--detach")
    monkeypatch.setattr(compose, "compose_command", lambda: ("docker", "compose"))
    v2 = compose_argv(stack, "up", "--detach")

    assert v1[0] == "docker-compose"
    assert v2[:2] == ["docker", "compose"]
    assert v1[1:] == v2[2:]
    assert v1[1:] == [
        "--ansi",
        "never",
        "--project-name",
        f"doce_{PROJECT_ID}",
        "--project-directory",
        str(tmp_path / "stack"),
        "--env-file",
        str(tmp_path / "stack" / "stack.env"),
        "--file",
        str(tmp_path / "stack" / "docker-compose.yml"),
        "up",
        "--detach",
    ]


def test_it_detects_an_installed_compose():
    assert shutil.which("docker-compose") or shutil.which("docker")
    prefix = compose_command()
    assert prefix in {("docker", "compose"), ("docker-compose",)}


def test_it_keeps_doce_secrets_out_of_the_command_environment(monkeypatch, settings):
    monkeypatch.setenv("SECRET_KEY", "do-not-leak")
    monkeypatch.setenv("DOCE_ENCRYPTION_KEY", "do-not-leak")
    settings.DOCE_DOCKER_HOST = "tcp://10.0.0.5:2375"
    env = command_env()
    assert "SECRET_KEY" not in env and "DOCE_ENCRYPTION_KEY" not in env
    assert env["DOCKER_HOST"] == "tcp://10.0.0.5:2375"
    assert "PATH" in env


def test_it_logs_a_command_its_output_and_exit_code(tmp_path):
    log = DockerLog.in_dir(tmp_path)
    result = run_logged(["sh", "-c", "echo hello; echo oops >&2; exit 3"], log=log, timeout=10)

    assert result.exit_code == 3
    assert not result.ok
    assert result.lines == ["hello", "oops"]
    lines = read_log(tmp_path).text.splitlines()
    assert lines[0].endswith("] sh -c 'echo hello; echo oops >&2; exit 3'")
    assert lines[1:3] == ["[docker] hello", "[docker] oops"]
    assert lines[3].endswith("] exit=3")


def test_it_kills_a_command_past_its_timeout(tmp_path):
    started = time.monotonic()
    result = run_logged(["sleep", "30"], log=DockerLog.in_dir(tmp_path), timeout=0.5)
    assert time.monotonic() - started < 4
    assert result.timed_out
    assert result.exit_code == -15  # SIGTERM
    assert classify_output(result.output, timed_out=True).kind == FailureKind.TIMEOUT
    assert "timed out after 0.5s; sending SIGTERM" in read_log(tmp_path).text


def test_it_kills_a_command_that_ignores_sigterm(tmp_path):
    script = "trap '' TERM; echo ready; while true; do sleep 0.1; done"
    started = time.monotonic()
    result = run_logged(["sh", "-c", script], log=DockerLog.in_dir(tmp_path), timeout=0.5)
    elapsed = time.monotonic() - started
    assert result.timed_out
    assert result.exit_code == -9  # SIGKILL, 5 s after SIGTERM
    assert 5 <= elapsed < 9


def test_it_reports_an_unreachable_engine_from_the_compose_cli(tmp_path, settings):
    """The real compose CLI, pointed at a dead socket: its output classifies as unreachable."""
    settings.DOCE_DOCKER_HOST = f"unix://{tmp_path}/dead.sock"
    stack_dir = tmp_path / "stack"
    stack_dir.mkdir()
    (stack_dir / "docker-compose.yml").write_text(
        'version: "2.4"\nservices:\n  preview:\n    image: doce-preview:latest\n'
    )
    (stack_dir / "stack.env").write_text("")
    stack = _stack(tmp_path)

    result = run_logged(compose_argv(stack, "ps"), log=stack.log, timeout=60, cwd=stack.directory)

    assert result.exit_code != 0
    assert classify_output(result.output).kind == FailureKind.ENGINE_UNREACHABLE


def test_it_classifies_an_unreachable_engine_before_running_compose(tmp_path, settings):
    settings.DOCE_DOCKER_HOST = f"unix://{tmp_path}/dead.sock"
    stack = _stack(tmp_path)
    for operation in (compose.compose_up, compose.compose_stop, compose.compose_down):
        with pytest.raises(compose.StackError) as caught:
            operation(stack)
        assert caught.value.failure.kind == FailureKind.ENGINE_UNREACHABLE
    assert read_log(tmp_path / "logs").text.count("Docker Engine unreachable") == 3
