"""The compose runner: `up`, `stop` and `down` of a project stack, logged and time-limited.

Compose v2 (`docker compose`) and v1 (`docker-compose`) are detected once per process and get
the same arguments. Every command is an argument list (never a shell string) built from
validated parts only: the compose project is `doce_<16 hex chars>`, files and env file are
absolute paths doce rendered, subcommands are fixed. Each command is logged to the project's
`docker.log` (`[host]` line, `[docker]` output, `exit=<code>`), runs with a timeout (SIGTERM,
then SIGKILL 5 s later) and fails with a classified `StackError`.

Reference: https://docs.docker.com/reference/cli/docker/compose/
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from django.conf import settings
from docker.errors import DockerException, ImageNotFound
from requests.exceptions import RequestException

from doce.docker.engine import engine_client
from doce.docker.failures import FailureKind, StackError, classify_output, failure
from doce.docker.logs import DockerLog

UP_TIMEOUT_S = 15 * 60
STOP_TIMEOUT_S = 2 * 60
DOWN_TIMEOUT_S = 2 * 60
STATUS_TIMEOUT_S = 30
KILL_GRACE_S = 5
OUTPUT_TAIL_LINES = 200

PROJECT_ID_RE = re.compile(r"[0-9a-f]{16}")


class ComposeNotFound(RuntimeError):
    """Neither `docker compose` nor `docker-compose` answered `version`."""


@dataclass(frozen=True)
class Stack:
    """A rendered project stack: what the runner needs to drive it.

    `project_id`: 16 lowercase hex chars (anything else raises `ValueError`, so nothing
    that looks like a flag reaches a command line); `directory`: the rendered stack
    folder; `compose_files`: absolute compose files, merged in order; `env_file`: the
    interpolation env file; `logs_dir`: where `docker.log` lives; `images`: image names
    the stack needs (checked before `up`).
    """

    project_id: str
    directory: Path
    compose_files: tuple[Path, ...]
    env_file: Path
    logs_dir: Path
    images: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.project_id, str) or not PROJECT_ID_RE.fullmatch(self.project_id):
            raise ValueError("project id must be 16 lowercase hex characters")
        for path in (self.directory, self.env_file, self.logs_dir, *self.compose_files):
            if not Path(path).is_absolute():
                raise ValueError("stack paths must be absolute")

    @property
    def compose_project(self) -> str:
        return f"doce_{self.project_id}"

    @property
    def log(self) -> DockerLog:
        return DockerLog.in_dir(self.logs_dir)


@dataclass
class CommandResult:
    """One finished command: `argv`, `exit_code` (None when killed), the last 200 lines of
    combined output, whether it `timed_out`, and its `duration_s` (seconds)."""

    argv: list[str]
    exit_code: int | None
    output: str = ""
    timed_out: bool = False
    duration_s: float = 0.0
    lines: list[str] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


# Compose v1 is a Python program: on a loaded 2-core host its `version` took over 5 s
# (seen at load 15+), which is slow, not absent.
COMPOSE_DETECT_TIMEOUT_SECONDS = 30


@cache
def compose_command() -> tuple[str, ...]:
    """The compose CLI prefix: `("docker", "compose")` (v2) or `("docker-compose",)` (v1).

    Detected once per process by running `version` (up to `COMPOSE_DETECT_TIMEOUT_SECONDS`
    each). Raises `ComposeNotFound`.
    """
    for candidate in (("docker", "compose"), ("docker-compose",)):
        try:
            done = subprocess.run(
                [*candidate, "version"],
                capture_output=True,
                timeout=COMPOSE_DETECT_TIMEOUT_SECONDS,
                env=command_env(),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return candidate
    raise ComposeNotFound("Docker Compose not found: install the compose plugin or docker-compose")


def command_env() -> dict[str, str]:
    """The environment of Docker CLI commands: only what they need (no doce secrets), plus
    DOCKER_HOST when DOCE_DOCKER_HOST is set."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    if settings.DOCE_DOCKER_HOST:
        env["DOCKER_HOST"] = settings.DOCE_DOCKER_HOST
    return env


def compose_argv(stack: Stack, *subcommand: str) -> list[str]:
    """The full argument list for `compose <subcommand…>` on `stack`."""
    argv = [
        *compose_command(),
        "--ansi",
        "never",
        "--project-name",
        stack.compose_project,
        "--project-directory",
        str(stack.directory),
        "--env-file",
        str(stack.env_file),
    ]
    for compose_file in stack.compose_files:
        argv += ["--file", str(compose_file)]
    return [*argv, *subcommand]


def run_logged(
    argv: Sequence[str],
    *,
    log: DockerLog,
    timeout: float,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> CommandResult:
    """Run `argv` with output streamed to `log` as `[docker]` lines; never raises for the
    command's own failure.

    Writes `[host <time>] <argv>` first and `[host <time>] exit=<code>` last. After
    `timeout` seconds the command's process group gets SIGTERM, then SIGKILL 5 s later;
    the result has `timed_out=True`. Raises `OSError` only when `argv[0]` can't start.
    """
    argv = list(argv)
    log.host(shlex.join(argv))
    started = time.monotonic()
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env=command_env() if env is None else env,
        start_new_session=True,  # its own process group, so a kill reaches its children
    )
    tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)
    reader = threading.Thread(target=_pump, args=(process, log, tail), daemon=True)
    reader.start()
    timed_out = False
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        log.host(f"timed out after {timeout:g}s; sending SIGTERM")
        _terminate(process)
    reader.join(timeout=KILL_GRACE_S)
    duration = time.monotonic() - started
    exit_code = process.returncode
    log.host(f"exit={exit_code}" + (f" (timed out after {timeout:g}s)" if timed_out else ""))
    return CommandResult(
        argv=argv,
        exit_code=exit_code,
        output="\n".join(tail),
        timed_out=timed_out,
        duration_s=duration,
        lines=list(tail),
    )


def _pump(process: subprocess.Popen, log: DockerLog, tail: collections.deque) -> None:
    assert process.stdout is not None
    for raw in process.stdout:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        tail.append(line)
        log.docker([line])


def _terminate(process: subprocess.Popen) -> None:
    _signal_group(process, signal.SIGTERM)
    try:
        process.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        process.wait()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


# --- Stack operations ------------------------------------------------------------------------


def compose_up(stack: Stack, *, timeout: float = UP_TIMEOUT_S) -> CommandResult:
    """`up -d` the stack (creates or starts its containers; harmless when already up).

    Checks first that the Engine answers and the images exist. Raises `StackError`
    (`ENGINE_UNREACHABLE`, `IMAGE_MISSING`, `PORT_IN_USE`, `TIMEOUT`, `DISK_FULL`, `OTHER`).
    """
    _preflight(stack)
    return _run_checked(stack, ("up", "--detach"), timeout)


def compose_stop(
    stack: Stack, *, service: str | None = None, timeout: float = STOP_TIMEOUT_S
) -> CommandResult:
    """`stop` the stack's containers (kept, with their state), or only `service`'s. Raises
    `StackError`; `ValueError` for an unknown service name (it reaches a command line)."""
    if service is not None and service not in SERVICES:
        raise ValueError(f"unknown service {service!r}")
    _require_engine(stack)
    args = ("stop", "--timeout", "5") + ((service,) if service else ())
    return _run_checked(stack, args, timeout)


SERVICES = ("preview", "agent")


def compose_restart(
    stack: Stack, service: str, *, timeout: float = STOP_TIMEOUT_S
) -> CommandResult:
    """`restart` one service of the stack (`preview` or `agent`). Raises `StackError`;
    `ValueError` for another service name (it reaches a command line)."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}")
    _require_engine(stack)
    return _run_checked(stack, ("restart", "--timeout", "5", service), timeout)


def compose_down(
    stack: Stack, *, delete: bool = False, timeout: float = DOWN_TIMEOUT_S
) -> CommandResult:
    """`down` the stack: remove its containers and network.

    With `delete=True` (the project is being deleted) also its volumes and any orphan
    containers of the compose project. Raises `StackError`.
    """
    _require_engine(stack)
    args = ["down", "--timeout", "5"]
    if delete:
        args += ["--volumes", "--remove-orphans"]
    return _run_checked(stack, tuple(args), timeout)


def _run_checked(stack: Stack, subcommand: tuple[str, ...], timeout: float) -> CommandResult:
    try:
        argv = compose_argv(stack, *subcommand)
    except ComposeNotFound as exc:
        stack.log.host(str(exc))
        raise StackError(failure(FailureKind.OTHER, str(exc))) from None
    result = run_logged(argv, log=stack.log, timeout=timeout, cwd=stack.directory)
    if not result.ok:
        raise StackError(classify_output(result.output, timed_out=result.timed_out))
    return result


def _require_engine(stack: Stack) -> None:
    client = _engine_or_fail(stack)
    client.close()


def _engine_or_fail(stack: Stack):
    try:
        client = engine_client(timeout=STATUS_TIMEOUT_S)
        client.ping()
    except (DockerException, RequestException, OSError):
        stack.log.host("Docker Engine unreachable")
        raise StackError(failure(FailureKind.ENGINE_UNREACHABLE)) from None
    return client


def _preflight(stack: Stack) -> None:
    client = _engine_or_fail(stack)
    try:
        missing = [image for image in stack.images if not _image_exists(client, image)]
    except (DockerException, RequestException, OSError):
        stack.log.host("Docker Engine unreachable")
        raise StackError(failure(FailureKind.ENGINE_UNREACHABLE)) from None
    finally:
        client.close()
    if missing:
        stack.log.host(f"image missing: {', '.join(missing)}")
        raise StackError(failure(FailureKind.IMAGE_MISSING, ", ".join(missing)))


def _image_exists(client, image: str) -> bool:
    try:
        client.images.get(image)
    except ImageNotFound:
        return False
    return True
