"""One-off containers: run a command in an image to completion, then remove the container.

Used for work that needs a project image's toolchain but no stack (e.g. installing the
site template's dependencies once, `projects.scaffold.prewarm`; building a production
release, `productions.build`). The container runs as the
doce process's uid:gid, carries this installation's labels (so reconciliation recognises
it) and is removed when it exits.

Reference: https://docker-py.readthedocs.io/en/stable/containers.html#docker.models.containers.ContainerCollection.run
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress

from docker.errors import DockerException, ImageNotFound, NotFound
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ReadTimeout, RequestException

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
    name: str | None = None,
    labels: Mapping[str, str] | None = None,
    cpus: float | None = None,
    memory_mb: int | None = None,
    on_output: Callable[[str], None] | None = None,
) -> None:
    """Run `argv` (an argument list, never a shell string) in `image` and wait for it.

    `volumes`: `{host path: {"bind": container path, "mode": "rw"|"ro"}}`; `timeout`: seconds
    the whole run may take (then the container is killed). `name`: the container's name (a
    leftover container of that name, e.g. from a killed worker, is removed first); `labels`
    are added to this installation's; `cpus` and `memory_mb` limit the container.
    `on_output(line)` receives each output line (stdout and stderr, without its newline)
    while the command runs. Raises `StackError`: `IMAGE_MISSING` without the image,
    `ENGINE_UNREACHABLE` when the Engine does not answer, `TIMEOUT` past `timeout`, `OTHER`
    ("<first two words> failed: <output tail>" as detail) when the command exits non-zero.
    The container is removed in every case.
    """
    try:
        client = engine_client(timeout=timeout + 30)
    except DockerException:
        raise StackError(failure(FailureKind.ENGINE_UNREACHABLE)) from None
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    container = None
    try:
        if name:
            _remove_named(client, name)
        container = client.containers.create(
            image,
            list(argv),
            name=name,
            volumes={path: dict(spec) for path, spec in volumes.items()},
            environment=dict(environment),
            user=f"{os.getuid()}:{os.getgid()}",
            working_dir=working_dir,
            labels={**(labels or {}), LABEL_MANAGED: "true", LABEL_INSTANCE: instance_id()},
            nano_cpus=int(cpus * 1e9) if cpus else None,
            mem_limit=f"{memory_mb}m" if memory_mb else None,
        )
        container.start()
        reader = threading.Thread(
            target=_read_output, args=(container, tail, on_output), daemon=True
        )
        reader.start()
        deadline = time.monotonic() + timeout
        code = _wait(container, deadline)
        reader.join(timeout=5)
    except ImageNotFound:
        raise StackError(failure(FailureKind.IMAGE_MISSING, image)) from None
    except (DockerException, RequestException, OSError):
        raise StackError(failure(FailureKind.ENGINE_UNREACHABLE)) from None
    finally:
        if container is not None:
            with suppress(DockerException, RequestException, OSError):
                container.remove(force=True)
        client.close()
    if code is None:
        raise StackError(failure(FailureKind.TIMEOUT, f"{' '.join(argv[:2])} ran over {timeout} s"))
    if code != 0:
        command = " ".join(argv[:2])
        output = "\n".join(tail)
        raise StackError(failure(FailureKind.OTHER, f"{command} failed: {output}"))


_TAIL_LINES = 40


def _remove_named(client, name: str) -> None:
    with suppress(NotFound):
        client.containers.get(name).remove(force=True)


def _wait(container, deadline: float) -> int | None:
    """The exit code, or None (and the container killed) once `deadline` passes."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            with suppress(DockerException, RequestException, OSError):
                container.kill()
            return None
        try:
            result = container.wait(timeout=min(left, 30.0))
        except (RequestsConnectionError, ReadTimeout):
            continue
        return int(result.get("StatusCode", 1))


def _read_output(container, tail: deque[str], on_output: Callable[[str], None] | None) -> None:
    pending = b""
    try:
        for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=True):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                _emit(raw, tail, on_output)
    except (DockerException, RequestException, OSError):
        pass
    if pending:
        _emit(pending, tail, on_output)


def _emit(raw: bytes, tail: deque[str], on_output: Callable[[str], None] | None) -> None:
    line = raw.decode("utf-8", "replace").rstrip("\r")
    tail.append(line)
    if on_output is not None:
        with suppress(Exception):  # a failing sink must not stop the build
            on_output(line)
