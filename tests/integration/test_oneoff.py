"""One-off containers (`doce.docker.oneoff.run_oneoff`) on the real Engine: output streamed
line by line, a failure carries the output's tail, a timeout kills the container, limits and
names apply, and nothing is left behind."""

from __future__ import annotations

import pytest
from django.conf import settings

from doce.docker.engine import engine_client
from doce.docker.failures import FailureKind, StackError
from doce.docker.oneoff import run_oneoff

pytest_plugins = ["tests.fixtures_runtime"]
pytestmark = pytest.mark.docker

NAME = "doce_oneoff_test"


def run(script: str, *, timeout: float = 60, lines=None, **kwargs) -> None:
    run_oneoff(
        settings.DOCE_PREVIEW_IMAGE,
        ["node", "-e", script],
        volumes={},
        environment={"GREETING": "hello"},
        working_dir="/tmp",
        timeout=timeout,
        name=NAME,
        on_output=None if lines is None else lines.append,
        **kwargs,
    )


def leftover() -> bool:
    client = engine_client()
    try:
        return bool(client.containers.list(all=True, filters={"name": NAME}))
    finally:
        client.close()


def test_output_streams_and_failures_carry_the_tail(runtime_images):
    lines: list[str] = []
    run(
        "console.log(process.env.GREETING); console.error('to stderr');"
        "const fs = require('fs'); let limit;"
        "try { limit = fs.readFileSync('/sys/fs/cgroup/memory.max', 'utf8'); }"
        "catch { limit = fs.readFileSync('/sys/fs/cgroup/memory/memory.limit_in_bytes', 'utf8'); }"
        "console.log(limit.trim())",
        lines=lines,
        memory_mb=256,
        cpus=0.5,
    )
    # Both streams arrive; Docker keeps each stream's order but not the order across them.
    assert sorted(lines) == sorted(["hello", "to stderr", str(256 * 1024 * 1024)])
    assert [line for line in lines if line != "to stderr"] == ["hello", str(256 * 1024 * 1024)]
    assert not leftover()

    with pytest.raises(StackError) as failed:
        run("console.log('step one'); console.error('broken here'); process.exit(3)")
    assert failed.value.failure.kind == FailureKind.OTHER
    assert "broken here" in failed.value.failure.detail
    assert not leftover()

    with pytest.raises(StackError) as slow:
        run("setTimeout(() => {}, 60000)", timeout=2)
    assert slow.value.failure.kind == FailureKind.TIMEOUT
    assert not leftover()
