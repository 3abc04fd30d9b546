"""One-off containers: run a command in an image to completion, then remove the container.

Used for work that needs a project image's toolchain but no stack (e.g. installing the
site template's dependencies once, `projects.scaffold.prewarm`). The container runs as the
doce process's uid:gid, carries this installation's labels (so reconciliation recognises
it) and is removed when it exits.

Reference: https://docker-py.readthedocs.io/en/stable/containers.html#docker.models.containers.ContainerCollection.run
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from docker.errors import ContainerError, DockerException, ImageNotFound
from requests.exceptions import RequestException

from doce.docker.engine import engine_client
from doce.docker.failures import FailureKind, StackError, failure
from doce.docker.stacks import LABEL_INSTANCE, LABEL_MANAGED, instance_id


def run_oneoff(
    image: str,
    argv: Sequence[str],
    *,
    volumes: Mapping[str, Mapping[str, str]],
    environment: Mapping[str, str],
    working_dir: str,
    timeout: float,
) -> None:
    """Run `argv` (an argument list, never a shell string) in `image` and wait for it.

    `volumes`: `{host path: {"bind": container path, "mode": "rw"|"ro"}}`; `timeout`: the
    Engine request timeout in seconds (the whole run must fit in it). Raises `StackError`:
    `IMAGE_MISSING` without the image, `ENGINE_UNREACHABLE` when the Engine does not answer,
    `OTHER` ("<first two words> failed: <stderr>" as detail) when the command exits non-zero.
    """
    try:
        client = engine_client(timeout=timeout)
    except DockerException:
        raise StackError(failure(FailureKind.ENGINE_UNREACHABLE)) from None
    try:
        client.containers.run(
            image,
            list(argv),
            volumes={path: dict(spec) for path, spec in volumes.items()},
            environment=dict(environment),
            user=f"{os.getuid()}:{os.getgid()}",
            working_dir=working_dir,
            labels={LABEL_MANAGED: "true", LABEL_INSTANCE: instance_id()},
            remove=True,
            stdout=True,
            stderr=True,
        )
    except ImageNotFound:
        raise StackError(failure(FailureKind.IMAGE_MISSING, image)) from None
    except ContainerError as exc:
        stderr = exc.stderr or b""
        output = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
        command = " ".join(argv[:2])
        raise StackError(failure(FailureKind.OTHER, f"{command} failed: {output}")) from None
    except (DockerException, RequestException, OSError):
        raise StackError(failure(FailureKind.ENGINE_UNREACHABLE)) from None
    finally:
        client.close()
