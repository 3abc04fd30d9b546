"""Project stacks as the Engine sees them, found by label through the docker SDK.

Every container of a project stack carries these labels (set by `compose/project-stack.yml`):

- `dev.doce.managed=true`
- `dev.doce.instance=<instance id>`: which doce installation made it (`instance_id()`), so
  reconciliation on one Engine shared by several installations (or test runs) only
  touches its own stacks;
- `dev.doce.project=<project id>` and `dev.doce.service=preview|agent`;
- `dev.doce.render=<hash>`: a hash of the stack's rendered files, so a stopped stack whose
  rendering and images are unchanged can be started directly (`start_existing_stack`).

Reference: https://docker-py.readthedocs.io/en/stable/containers.html
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from docker.errors import APIError, DockerException, NotFound
from requests.exceptions import RequestException

from doce.docker.compose import PROJECT_ID_RE, STATUS_TIMEOUT_S
from doce.docker.engine import engine_client
from doce.docker.failures import FailureKind, StackError, failure
from doce.docker.logs import DockerLog, follow_container_logs, stop_following

LABEL_MANAGED = "dev.doce.managed"
LABEL_INSTANCE = "dev.doce.instance"
LABEL_PROJECT = "dev.doce.project"
LABEL_SERVICE = "dev.doce.service"
LABEL_RENDER = "dev.doce.render"
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
SERVICES = ("preview", "agent")


def instance_id() -> str:
    """This installation's label value: DOCE_INSTANCE, else 12 hex chars of a hash of the
    data directory's path."""
    if settings.DOCE_INSTANCE:
        return settings.DOCE_INSTANCE
    return hashlib.sha256(str(settings.DATA_DIR).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ContainerState:
    """One container: `service` name, `id`, Engine `status` (created, running, exited, …)
    and `health` (healthy, unhealthy, starting, or "" without a healthcheck)."""

    service: str
    id: str
    status: str
    health: str = ""

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass(frozen=True)
class StackStatus:
    """The containers of one project stack, keyed by service."""

    project_id: str
    containers: dict[str, ContainerState] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return bool(self.containers)

    @property
    def running(self) -> bool:
        """Every service has a running container."""
        return all(
            service in self.containers and self.containers[service].running for service in SERVICES
        )

    def state(self, service: str) -> str:
        """The service's container status, or "missing"."""
        container = self.containers.get(service)
        return container.status if container else "missing"


def _client():
    try:
        return engine_client(timeout=STATUS_TIMEOUT_S)
    except DockerException:
        raise StackError(failure(FailureKind.ENGINE_UNREACHABLE)) from None


def _container_state(container) -> ContainerState:
    labels = container.labels or {}
    health = (container.attrs.get("State") or {}).get("Health") or {}
    return ContainerState(
        service=labels.get(LABEL_SERVICE, ""),
        id=container.id,
        status=container.status,
        health=health.get("Status", ""),
    )


def list_stacks() -> dict[str, StackStatus]:
    """Every stack of this installation on the Engine: project id → `StackStatus`.

    Raises `StackError(ENGINE_UNREACHABLE)` when the Engine doesn't answer within 30 s.
    """
    client = _client()
    try:
        containers = client.containers.list(
            all=True,
            filters={"label": [f"{LABEL_MANAGED}=true", f"{LABEL_INSTANCE}={instance_id()}"]},
        )
    except (DockerException, RequestException, OSError):
        raise StackError(failure(FailureKind.ENGINE_UNREACHABLE)) from None
    finally:
        client.close()
    grouped: dict[str, dict[str, ContainerState]] = defaultdict(dict)
    for container in containers:
        project_id = (container.labels or {}).get(LABEL_PROJECT, "")
        if PROJECT_ID_RE.fullmatch(project_id):
            state = _container_state(container)
            grouped[project_id][state.service] = state
    return {pid: StackStatus(pid, services) for pid, services in grouped.items()}


def stack_status(project_id: str) -> StackStatus:
    """The containers of one project's stack (none when it was never started or is down).

    Raises `StackError(ENGINE_UNREACHABLE)`.
    """
    client = _client()
    try:
        containers = client.containers.list(
            all=True,
            filters={
                "label": [
                    f"{LABEL_MANAGED}=true",
                    f"{LABEL_INSTANCE}={instance_id()}",
                    f"{LABEL_PROJECT}={project_id}",
                ]
            },
        )
    except (DockerException, RequestException, OSError):
        raise StackError(failure(FailureKind.ENGINE_UNREACHABLE)) from None
    finally:
        client.close()
    states = (_container_state(container) for container in containers)
    return StackStatus(project_id, {state.service: state for state in states})


def remove_stack(project_id: str) -> list[str]:
    """Remove a stack without its compose files: containers (forced), then the compose
    project's networks and volumes. Returns the removed container ids.

    Used for stacks whose project no longer exists. Raises `StackError(ENGINE_UNREACHABLE)`.
    """
    if not PROJECT_ID_RE.fullmatch(project_id):
        raise ValueError("project id must be 16 lowercase hex characters")
    status = stack_status(project_id)
    stop_following(c.id for c in status.containers.values())
    compose_label = f"{COMPOSE_PROJECT_LABEL}=doce_{project_id}"
    client = _client()
    removed = []
    try:
        for state in status.containers.values():
            try:
                client.containers.get(state.id).remove(force=True, v=True)
                removed.append(state.id)
            except NotFound:
                continue
        for network in client.networks.list(filters={"label": compose_label}):
            _ignore_gone(network.remove)
        for volume in client.volumes.list(filters={"label": compose_label}):
            _ignore_gone(volume.remove)
    except (DockerException, RequestException, OSError):
        raise StackError(failure(FailureKind.ENGINE_UNREACHABLE)) from None
    finally:
        client.close()
    return removed


def _ignore_gone(remove) -> None:
    try:
        remove()
    except NotFound:
        pass
    except APIError as exc:  # still in use by something else: leave it
        if exc.status_code != 409:
            raise


def follow_stack_logs(project_id: str, logs_dir: Path) -> int:
    """Start `[app]` log followers for the running containers of a stack that have none in
    this process. Returns how many were started. Raises `StackError(ENGINE_UNREACHABLE)`."""
    started = 0
    for state in stack_status(project_id).containers.values():
        if state.running and follow_container_logs(state.id, state.service, logs_dir):
            started += 1
    return started


def start_existing_stack(
    project_id: str, *, render_hash: str, images: Mapping[str, str], log: DockerLog
) -> bool:
    """Start a stopped stack's containers directly through the SDK, both at once.

    Only when both containers exist, carry `render_hash` and run the current image of
    their service (`images`: service → image name), i.e. when `compose up` would merely
    start them; it then costs a fraction of a compose run. Returns False, having changed
    nothing, in every other case (or on any error), so the caller runs `compose up`.
    """
    try:
        client = _client()
    except StackError:
        return False
    try:
        containers = _containers_to_start(client, project_id, render_hash, images)
        if containers is None:
            return False
        if not containers:
            return True
        names = [container.name for container in containers]
        log.host(f"docker start {' '.join(names)}")
        with ThreadPoolExecutor(max_workers=len(containers)) as pool:
            list(pool.map(lambda container: container.start(), containers))
        log.host("exit=0")
        return True
    except (DockerException, RequestException, OSError) as exc:
        log.host(f"docker start failed ({exc.__class__.__name__}); falling back to compose up")
        return False
    finally:
        client.close()


def _containers_to_start(client, project_id, render_hash, images):
    """The stopped containers to start, [] when all run, None when compose must decide."""
    found = client.containers.list(
        all=True,
        filters={
            "label": [
                f"{LABEL_MANAGED}=true",
                f"{LABEL_INSTANCE}={instance_id()}",
                f"{LABEL_PROJECT}={project_id}",
            ]
        },
    )
    by_service = {(c.labels or {}).get(LABEL_SERVICE): c for c in found}
    if len(found) != len(SERVICES) or set(by_service) != set(SERVICES):
        return None
    to_start = []
    for service, container in by_service.items():
        if (container.labels or {}).get(LABEL_RENDER) != render_hash:
            return None
        if container.attrs.get("Image") != client.images.get(images[service]).id:
            return None
        if container.status in {"created", "exited"}:
            to_start.append(container)
        elif container.status != "running":
            return None
    return to_start
