"""Long-running single containers outside compose (e.g. a production release's server):
start one, find them by label, remove them.

Each carries this installation's labels plus the caller's, publishes one container port on
a loopback host port, runs as the doce process's uid:gid with CPU and memory limits and the
`unless-stopped` restart policy.

Reference: https://docker-py.readthedocs.io/en/stable/containers.html
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from requests.exceptions import RequestException

from doce.docker.engine import engine_client
from doce.docker.failures import FailureKind, StackError, classify_output, failure
from doce.docker.stacks import LABEL_INSTANCE, LABEL_MANAGED, instance_id

REQUEST_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ServiceContainer:
    """A container found by label: `name`, Engine `status`, its `labels`."""

    name: str
    status: str
    labels: dict[str, str]


def _client():
    try:
        return engine_client(timeout=REQUEST_TIMEOUT_S)
    except DockerException:
        raise StackError(failure(FailureKind.ENGINE_UNREACHABLE)) from None


def start_service(
    name: str,
    image: str,
    argv: Sequence[str],
    *,
    volumes: Mapping[str, Mapping[str, str]],
    environment: Mapping[str, str],
    working_dir: str,
    host_port: int,
    container_port: int,
    labels: Mapping[str, str],
    cpus: float,
    memory_mb: int,
) -> None:
    """Create and start container `name` (argv is an argument list, never a shell string).

    A container of that name already running is left as it is (a re-run after a crash); a
    stopped one is removed and created again. Raises `StackError` (`IMAGE_MISSING`,
    `PORT_IN_USE`, `ENGINE_UNREACHABLE`, `OTHER`).
    """
    client = _client()
    try:
        try:
            existing = client.containers.get(name)
        except NotFound:
            existing = None
        if existing is not None:
            if existing.status == "running":
                return
            existing.remove(force=True)
        client.containers.run(
            image,
            list(argv),
            name=name,
            detach=True,
            volumes={path: dict(spec) for path, spec in volumes.items()},
            environment=dict(environment),
            user=f"{os.getuid()}:{os.getgid()}",
            working_dir=working_dir,
            ports={f"{container_port}/tcp": ("127.0.0.1", host_port)},
            labels={**labels, LABEL_MANAGED: "true", LABEL_INSTANCE: instance_id()},
            nano_cpus=int(cpus * 1e9),
            mem_limit=f"{memory_mb}m",
            restart_policy={"Name": "unless-stopped"},
        )
    except ImageNotFound:
        raise StackError(failure(FailureKind.IMAGE_MISSING, image)) from None
    except APIError as exc:
        raise StackError(classify_output(str(exc))) from None
    except (DockerException, RequestException, OSError):
        raise StackError(failure(FailureKind.ENGINE_UNREACHABLE)) from None
    finally:
        client.close()


def find_services(labels: Mapping[str, str]) -> list[ServiceContainer]:
    """This installation's containers carrying all of `labels`. Raises `StackError`."""
    client = _client()
    wanted = [f"{LABEL_MANAGED}=true", f"{LABEL_INSTANCE}={instance_id()}"]
    wanted += [f"{key}={value}" if value else key for key, value in labels.items()]
    try:
        # The list endpoint alone (no inspect per container): a container removed while we
        # list is simply not there, instead of a NotFound in the middle of the listing.
        found = client.api.containers(all=True, filters={"label": wanted})
        return [
            ServiceContainer(
                (c.get("Names") or ["/"])[0].lstrip("/"),
                str(c.get("State", "")),
                dict(c.get("Labels") or {}),
            )
            for c in found
        ]
    except (DockerException, RequestException, OSError):
        raise StackError(failure(FailureKind.ENGINE_UNREACHABLE)) from None
    finally:
        client.close()


def remove_service(name: str, *, stop_timeout: int = 10) -> bool:
    """Stop (SIGTERM, then SIGKILL after `stop_timeout` s) and remove container `name`.
    Returns False when there was none. Raises `StackError(ENGINE_UNREACHABLE)`."""
    client = _client()
    try:
        try:
            container = client.containers.get(name)
        except NotFound:
            return False
        if container.status == "running":
            container.stop(timeout=stop_timeout)
        container.remove(force=True)
        return True
    except NotFound:
        return True
    except (DockerException, RequestException, OSError):
        raise StackError(failure(FailureKind.ENGINE_UNREACHABLE)) from None
    finally:
        client.close()
