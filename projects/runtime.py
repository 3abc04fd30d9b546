"""A project's stack at run time: render it, bring it up, stop it, take it down, probe it.

The functions the lifecycle job handlers call, in order for a start:

    ensure_ports(project)                      # projects.ports
    scaffold_site(project)                     # projects.scaffold (once, at create)
    render_stack(project, extra_env=..., provider_config=...)
    stack_up(project)                          # compose up -d, then follow [app] logs
    check_ready(project) / wait_ready(project, timeout=...)

and `stack_stop(project)`, `stack_down(project, delete=True)` to stop and delete. Failures
raise `doce.docker.failures.StackError` (`.failure.kind`, `.failure.message`,
`.failure.retryable`).

Rendered files, all under `<project root>/stack/` (mode 0600 where they hold secrets):
`docker-compose.yml` and, with DOCE_EXTRA_CA_BUNDLE, `extra-ca.yml` (copies of the
templates in `compose/`), `stack.env` (interpolation variables), `runtime.env` (settings
for both containers), `agent.env` (the agent's password) and `agent-config/opencode.json` (the
agent's model and its providers through the model gateway, with its gateway token; the
folder is mounted read-only at `/etc/doce/agent`, so a restarted agent reads a rewritten file). The
agent's home (sessions, caches) is `<project root>/agent-home/`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.conf import settings

from doce.docker import health
from doce.docker.compose import (
    CommandResult,
    Stack,
    compose_down,
    compose_restart,
    compose_stop,
    compose_up,
)
from doce.docker.images import COMPOSE_DIR
from doce.docker.logs import stop_following
from doce.docker.stacks import (
    follow_stack_logs,
    instance_id,
    remove_stack,
    stack_status,
    start_existing_stack,
)
from projects import ports
from projects.agent_config import opencode_config
from projects.models import StackFiles
from projects.scaffold import npm_cache_dir

STACK_TEMPLATE = COMPOSE_DIR / "project-stack.yml"
CA_TEMPLATE = COMPOSE_DIR / "project-stack.ca.yml"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Names the stack sets itself; extra env may not override them.
_RESERVED_AGENT_ENV = {"HOME", "OPENCODE_CONFIG", "OPENCODE_SERVER_PASSWORD", "NODE_EXTRA_CA_CERTS"}


def stack_dir(project: StackFiles) -> Path:
    return project.root_dir / "stack"


def project_stack(project: StackFiles) -> Stack:
    """The `Stack` of `project` (a `Project` or a warm `PoolEntry`), compose project
    `doce_<stack_name>` (its rendered files need not exist yet).

    Raises `ValueError` for a malformed project id.
    """
    directory = stack_dir(project)
    files = [directory / "docker-compose.yml"]
    if (directory / "extra-ca.yml").is_file():
        files.append(directory / "extra-ca.yml")
    return Stack(
        project_id=project.stack_name,
        directory=directory,
        compose_files=tuple(files),
        env_file=directory / "stack.env",
        logs_dir=project.logs_dir,
        images=(settings.DOCE_PREVIEW_IMAGE, settings.DOCE_AGENT_IMAGE),
    )


def ensure_agent_password(project: StackFiles) -> str:
    """The project's OPENCODE_SERVER_PASSWORD, generated (and saved encrypted) if unset."""
    if not project.agent_password:
        project.agent_password = secrets.token_urlsafe(32)
        project.save(update_fields=["agent_password"])
    return project.agent_password


def render_stack(
    project: StackFiles,
    *,
    extra_env: Mapping[str, str] | None = None,
    provider_config: Mapping[str, Any] | None = None,
    model: str | None = None,
) -> Stack:
    """Write the project's stack files and return its `Stack`.

    `extra_env`: variables for the agent container only (e.g. a provider's API key);
    `provider_config`: OpenCode's `provider` block (`{"<id>": {"npm": ..., "options":
    {...}, "models": {...}}}`); `model`: "provider/model" (default `project.model`).
    Both end up only in this project's agent container, in files of mode 0600.
    Requires ports (`ensure_ports`) and the site (`scaffold_site`). Idempotent. Raises
    `ValueError` for an extra env name that is malformed or reserved, or a value with a
    newline, NUL, `$` or a leading quote (Compose v1 and v2 read those differently), and
    `FileNotFoundError` when the site is missing.
    """
    if project.preview_port is None or project.agent_port is None:
        raise ValueError("the project has no ports: call ensure_ports() first")
    if not project.site_dir.is_dir():
        raise FileNotFoundError("the project's site is missing: call scaffold_site() first")
    agent_env = {"OPENCODE_SERVER_PASSWORD": ensure_agent_password(project)}
    for name, value in (extra_env or {}).items():
        if not _ENV_NAME.fullmatch(name) or name in _RESERVED_AGENT_ENV:
            raise ValueError(f"extra env name {name!r} is not allowed")
        agent_env[name] = value

    directory = stack_dir(project)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    agent_home = project.root_dir / "agent-home"
    agent_home.mkdir(parents=True, exist_ok=True)
    project.logs_dir.mkdir(parents=True, exist_ok=True)

    files = {
        "agent.env": _env_text(agent_env),
        "runtime.env": _env_text(_runtime_env()),
        "docker-compose.yml": STACK_TEMPLATE.read_text(),
    }
    if settings.DOCE_EXTRA_CA_BUNDLE:
        files["extra-ca.yml"] = CA_TEMPLATE.read_text()
    variables = _stack_variables(project, directory, agent_home)
    files["stack.env"] = _env_text(variables)
    # Labels every container with what it was created from (see start_existing_stack).
    variables["RENDER_HASH"] = hashlib.sha256(
        json.dumps(files, sort_keys=True).encode()
    ).hexdigest()[:16]
    files["stack.env"] = _env_text(variables)
    for name, text in files.items():
        _write_private(directory / name, text)
    # Not part of the render hash: it changes with every rendering (a new gateway token) and
    # reaches the agent by a restart, without recreating the containers.
    write_agent_config(project, provider_config, model=model)
    (directory / "opencode.json").unlink(missing_ok=True)  # where releases before kept it
    if "extra-ca.yml" not in files:
        (directory / "extra-ca.yml").unlink(missing_ok=True)
    return project_stack(project)


def agent_config_dir(project: StackFiles) -> Path:
    """`<project root>/stack/agent-config/`: holds `opencode.json`, mounted at `/etc/doce/agent`."""
    return stack_dir(project) / "agent-config"


def write_agent_config(
    project: StackFiles, provider_config: Mapping[str, Any] | None, *, model: str | None = None
) -> Path:
    """Write the agent's `opencode.json` (mode 0600, folder 0700) and return its path.

    `provider_config` comes from `projects.agent_config.opencode_provider_config` (gateway
    URLs and token only); `model` defaults to `project.model` (a warm pool entry has none:
    its agent names no model until a project claims it). A running agent reads it at its
    next (re)start.
    """
    folder = agent_config_dir(project)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    path = folder / "opencode.json"
    chosen = model or str(getattr(project, "model", ""))
    text = json.dumps(opencode_config(chosen, provider_config), indent=2)
    _write_private(path, text + "\n")
    return path


def _stack_variables(project: StackFiles, directory: Path, agent_home: Path) -> dict[str, str]:
    return {
        "PROJECT_ID": project.stack_name,
        "INSTANCE": instance_id(),
        "PREVIEW_IMAGE": settings.DOCE_PREVIEW_IMAGE,
        "AGENT_IMAGE": settings.DOCE_AGENT_IMAGE,
        "RUN_AS": f"{os.getuid()}:{os.getgid()}",
        "SITE_DIR": str(project.site_dir),
        "NPM_CACHE_DIR": str(npm_cache_dir()),
        "AGENT_HOME_DIR": str(agent_home),
        "AGENT_CONFIG_DIR": str(agent_config_dir(project)),
        "AGENT_ENV_FILE": str(directory / "agent.env"),
        "RUNTIME_ENV_FILE": str(directory / "runtime.env"),
        "BIND_ADDRESS": ports.PREVIEW_ADDRESS,
        "PREVIEW_PORT": str(project.preview_port),
        "AGENT_PORT": str(project.agent_port),
        "PREVIEW_MEMORY": f"{settings.DOCE_PREVIEW_MEMORY_MB}m",
        "AGENT_MEMORY": f"{settings.DOCE_AGENT_MEMORY_MB}m",
        "PREVIEW_CPUS": f"{settings.DOCE_PREVIEW_CPUS:g}",
        "AGENT_CPUS": f"{settings.DOCE_AGENT_CPUS:g}",
        "EXTRA_CA_BUNDLE": settings.DOCE_EXTRA_CA_BUNDLE,
    }


def _runtime_env() -> dict[str, str]:
    env = {"ASTRO_TELEMETRY_DISABLED": "1"}
    if settings.DOCE_NPM_REGISTRY:
        env["npm_config_registry"] = settings.DOCE_NPM_REGISTRY
    return env


def _env_text(values: Mapping[str, str]) -> str:
    lines = []
    for name, value in values.items():
        value = str(value)
        if any(ch in value for ch in "\n\r\0$") or value[:1] in {"'", '"'}:
            raise ValueError(f"the value of {name} has characters an env file cannot carry")
        lines.append(f"{name}={value}")
    return "\n".join(lines) + "\n"


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically with mode 0600."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


# --- Operations ------------------------------------------------------------------------------


def stack_up(project: StackFiles, *, timeout: float | None = None) -> CommandResult:
    """Bring the rendered stack up, then follow its containers' output into the log.

    A stopped stack whose rendering and images are unchanged is started directly through
    the SDK (about a second faster than compose v1); anything else gets `compose up -d`.
    Harmless when the stack is already up. Raises `StackError`; `ValueError` when the stack
    was never rendered.
    """
    stack = project_stack(project)
    if not stack.env_file.is_file():
        raise ValueError("the stack is not rendered: call render_stack() first")
    if start_existing_stack(
        project.stack_name, render_hash=_render_hash(stack), images=_service_images(), log=stack.log
    ):
        result = CommandResult(argv=["docker", "start"], exit_code=0)
    elif timeout is None:
        result = compose_up(stack)
    else:
        result = compose_up(stack, timeout=timeout)
    follow_stack_logs(project.stack_name, project.logs_dir)
    return result


def _render_hash(stack: Stack) -> str:
    for line in stack.env_file.read_text().splitlines():
        if line.startswith("RENDER_HASH="):
            return line.partition("=")[2]
    return ""


def _service_images() -> dict[str, str]:
    return {"preview": settings.DOCE_PREVIEW_IMAGE, "agent": settings.DOCE_AGENT_IMAGE}


def stack_stop(project: StackFiles, *, timeout: float | None = None) -> CommandResult | None:
    """`compose stop` the stack (None when it was never rendered). Raises `StackError`."""
    stack = project_stack(project)
    if not stack.env_file.is_file():
        return None
    _stop_followers(project)
    return compose_stop(stack) if timeout is None else compose_stop(stack, timeout=timeout)


def restart_service(project: StackFiles, service: str) -> CommandResult:
    """`compose restart` one service (`preview` or `agent`) of a rendered stack, then follow
    its new container's output. Raises `StackError`; `ValueError` when never rendered."""
    stack = project_stack(project)
    if not stack.env_file.is_file():
        raise ValueError("the stack is not rendered: call render_stack() first")
    result = compose_restart(stack, service)
    follow_stack_logs(project.stack_name, project.logs_dir)
    return result


def stop_service(project: StackFiles, service: str) -> CommandResult | None:
    """`compose stop` one service (an idle agent: the preview keeps running); None when the
    stack was never rendered. Raises `StackError`."""
    stack = project_stack(project)
    if not stack.env_file.is_file():
        return None
    return compose_stop(stack, service=service)


def stack_down(project: StackFiles, *, delete: bool = False) -> CommandResult | None:
    """`compose down` the stack; `delete=True` also removes its volumes and orphans (the
    project is being deleted). Without rendered files, `delete=True` removes the stack's
    containers by label instead and returns None. Raises `StackError`."""
    stack = project_stack(project)
    if not stack.env_file.is_file():
        if delete:
            remove_stack(project.stack_name)
        return None
    _stop_followers(project)
    return compose_down(stack, delete=delete)


def delete_files(project: StackFiles) -> None:
    """Remove the project's folder (site, logs, stack). Call after `stack_down(delete=True)`."""
    shutil.rmtree(project.root_dir, ignore_errors=True)


def _stop_followers(project: StackFiles) -> None:
    try:
        status = stack_status(project.stack_name)
    except Exception:  # the command that follows reports an unreachable Engine properly
        return
    stop_following(container.id for container in status.containers.values())


def preview_answers(project: StackFiles) -> bool:
    """Probe the preview once (any HTTP answer, at most 1 s); False without ports."""
    if project.preview_port is None:
        return False
    return health.preview_ready(health.probe_host(ports.PREVIEW_ADDRESS), project.preview_port)


def agent_answers(project: StackFiles) -> bool:
    """Probe the agent once (`/doc` 200 with its password, at most 1 s); False without ports."""
    if project.agent_port is None:
        return False
    return health.agent_ready(settings.DOCE_AGENT_HOST, project.agent_port, project.agent_password)


def check_ready(project: StackFiles) -> health.Readiness:
    """Probe the preview (any HTTP answer) and the agent (`/doc` 200 with its password) once.
    Neither is ready while the project has no ports."""
    if project.preview_port is None or project.agent_port is None:
        return health.Readiness(preview=False, agent=False)
    return health.check_ready(
        preview_host=health.probe_host(ports.PREVIEW_ADDRESS),
        preview_port=project.preview_port,
        agent_host=settings.DOCE_AGENT_HOST,
        agent_port=project.agent_port,
        agent_password=project.agent_password,
    )


def wait_ready(project: StackFiles, *, timeout: float, interval: float = 0.1) -> health.Readiness:
    """Probe until both services are ready or `timeout` seconds pass (check `.ready`).
    Raises `ValueError` when the project has no ports (`ensure_ports` first)."""
    if project.preview_port is None or project.agent_port is None:
        raise ValueError("the project has no ports: call ensure_ports() first")
    return health.wait_ready(
        preview_host=health.probe_host(ports.PREVIEW_ADDRESS),
        preview_port=project.preview_port,
        agent_host=settings.DOCE_AGENT_HOST,
        agent_port=project.agent_port,
        agent_password=project.agent_password,
        timeout=timeout,
        interval=interval,
    )
