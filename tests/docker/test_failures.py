"""Classification of Docker and compose failures."""

from __future__ import annotations

import pytest

from doce.docker.failures import FailureKind, StackError, classify_output

V1_UNREACHABLE = (
    "ERROR: Couldn't connect to Docker daemon at http+docker://localhost - is it running?"
)
V2_UNREACHABLE = (
    "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
    "Is the docker daemon running?"
)
ALLOCATED = (
    "ERROR: for preview  Cannot start service preview: driver failed programming external "
    "connectivity on endpoint doce_0123456789abcdef_preview_1: Bind for 127.0.0.1:42000 "
    "failed: port is already allocated"
)
IN_USE = "Error starting userland proxy: listen tcp4 127.0.0.1:42001: bind: address already in use"
PULL_DENIED = (
    "ERROR: pull access denied for doce-preview, repository does not exist or may require "
    "'docker login': denied: requested access to the resource is denied"
)
NO_SPACE = "failed to register layer: write /usr/lib/x: no space left on device"
# Every bridge network the Engine's default address pools allow is taken (seen on a machine
# running ~30 stacks).
NO_POOL = (
    "could not find an available, non-overlapping IPv4 address pool among the defaults to "
    "assign to the network"
)


@pytest.mark.parametrize(
    ("output", "kind"),
    [
        (V1_UNREACHABLE, FailureKind.ENGINE_UNREACHABLE),
        (V2_UNREACHABLE, FailureKind.ENGINE_UNREACHABLE),
        (ALLOCATED, FailureKind.PORT_IN_USE),
        (IN_USE, FailureKind.PORT_IN_USE),
        (PULL_DENIED, FailureKind.IMAGE_MISSING),
        ("Error response from daemon: No such image: doce-agent:latest", FailureKind.IMAGE_MISSING),
        (NO_SPACE, FailureKind.DISK_FULL),
        (NO_POOL, FailureKind.NO_NETWORK_POOL),
        ("ERROR: something unexpected happened", FailureKind.OTHER),
        ("", FailureKind.OTHER),
    ],
)
def test_it_classifies_tool_output(output, kind):
    assert classify_output(output).kind == kind


def test_it_classifies_a_timeout_whatever_the_output():
    assert classify_output(ALLOCATED, timed_out=True).kind == FailureKind.TIMEOUT


def test_it_marks_what_retrying_cannot_fix_as_permanent():
    assert classify_output(PULL_DENIED).permanent
    assert classify_output(NO_SPACE).permanent
    assert classify_output(V1_UNREACHABLE).retryable
    assert classify_output(ALLOCATED).retryable
    assert classify_output("boom", timed_out=True).retryable


def test_it_gives_actionable_messages_without_tool_output():
    failure = classify_output(PULL_DENIED)
    assert "build_images" in failure.message
    assert "pull access denied" not in failure.message
    assert classify_output(V2_UNREACHABLE).message.startswith("Docker Engine unreachable")


def test_it_redacts_secrets_in_the_detail():
    failure = classify_output("ERROR: OPENCODE_SERVER_PASSWORD=hunter2-secret-value failed")
    assert "hunter2-secret-value" not in failure.detail
    assert "[redacted]" in failure.detail


def test_it_keeps_only_the_tail_of_long_output():
    failure = classify_output("x" * 10_000 + " the end")
    assert len(failure.detail) <= 2000
    assert failure.detail.endswith("the end")


def test_stack_error_carries_the_failure():
    error = StackError(classify_output(IN_USE))
    assert error.failure.kind == FailureKind.PORT_IN_USE
    assert str(error) == error.failure.message
    assert not error.permanent
