"""Classified Docker failures: what went wrong, what a user can do, whether to retry.

Every failure of a compose command or an Engine call is turned into a `StackFailure` with one
of six kinds. The queue reads `retryable`; the UI shows `message`. Raw tool output is kept
only as a redacted `detail` tail for the project's log and the admin.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from doce.docker.engine import ENGINE_UNREACHABLE
from doce.redact import redact_text


class FailureKind(StrEnum):
    ENGINE_UNREACHABLE = "engine_unreachable"
    IMAGE_MISSING = "image_missing"
    PORT_IN_USE = "port_in_use"
    TIMEOUT = "timeout"
    DISK_FULL = "disk_full"
    NO_NETWORK_POOL = "no_network_pool"
    OTHER = "other"


_MESSAGES = {
    FailureKind.ENGINE_UNREACHABLE: ENGINE_UNREACHABLE,
    FailureKind.IMAGE_MISSING: (
        "A container image is missing. An operator must run `manage.py build_images` "
        "(add --offline on hosts without a container registry), then retry."
    ),
    FailureKind.PORT_IN_USE: (
        "A host port of this project is taken by another program. doce picks a new port "
        "on the next attempt."
    ),
    FailureKind.TIMEOUT: (
        "Docker did not finish in time and the command was stopped. The machine may be "
        "overloaded; the next attempt starts over."
    ),
    FailureKind.DISK_FULL: (
        "The disk is full, so Docker cannot create files. Free disk space (old images, "
        "stopped projects), then retry."
    ),
    FailureKind.NO_NETWORK_POOL: (
        "Docker has no free address range for this project's network: too many stacks run "
        "on this Engine. Stop projects you don't need (or an operator widens "
        "`default-address-pools` in Docker's daemon.json); doce tries again."
    ),
    FailureKind.OTHER: "Docker reported an error. The project's Docker log has the details.",
}

# Disk-full and image-missing need an operator; every other kind can pass on its own.
_RETRYABLE = {
    FailureKind.ENGINE_UNREACHABLE: True,
    FailureKind.IMAGE_MISSING: False,
    FailureKind.PORT_IN_USE: True,
    FailureKind.TIMEOUT: True,
    FailureKind.DISK_FULL: False,
    FailureKind.NO_NETWORK_POOL: True,
    FailureKind.OTHER: True,
}

# Checked in order: the first match wins. Texts of Compose v1, v2 and Engine 20.10+.
_PATTERNS: list[tuple[FailureKind, re.Pattern[str]]] = [
    (FailureKind.DISK_FULL, re.compile(r"no space left on device|disk quota exceeded", re.I)),
    (
        FailureKind.ENGINE_UNREACHABLE,
        re.compile(
            r"cannot connect to the docker daemon|couldn't connect to docker daemon|"
            r"error while fetching server api version|is the docker daemon running|"
            r"connection refused.*docker\.sock|docker\.sock.*(no such file|connection refused)",
            re.I,
        ),
    ),
    (
        FailureKind.NO_NETWORK_POOL,
        re.compile(r"could not find an available, non-overlapping ipv4 address pool", re.I),
    ),
    (
        FailureKind.PORT_IN_USE,
        re.compile(r"port is already allocated|address already in use", re.I),
    ),
    (
        FailureKind.IMAGE_MISSING,
        re.compile(
            r"pull access denied|repository does not exist|no such image|manifest unknown|"
            r"not found: manifest|image .* not found|failed to resolve reference",
            re.I,
        ),
    ),
]

DETAIL_CHARS = 2000


@dataclass(frozen=True)
class StackFailure:
    """A classified failure.

    `kind`: a `FailureKind`; `message`: a sentence a user can act on; `retryable`: False
    when retrying cannot help until someone acts; `detail`: the redacted tail (at most
    2000 chars) of the tool output, for logs and the admin, never for the browser.
    """

    kind: FailureKind
    message: str
    retryable: bool
    detail: str = ""

    @property
    def permanent(self) -> bool:
        return not self.retryable


class StackError(Exception):
    """A Docker operation failed; `failure` says how (see `StackFailure`)."""

    def __init__(self, failure: StackFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure

    @property
    def permanent(self) -> bool:
        return self.failure.permanent


def failure(kind: FailureKind, detail: str = "") -> StackFailure:
    """The `StackFailure` of `kind`, with `detail` redacted and cut to its tail."""
    return StackFailure(
        kind=kind,
        message=_MESSAGES[kind],
        retryable=_RETRYABLE[kind],
        detail=redact_text(detail.strip())[-DETAIL_CHARS:],
    )


def classify_output(output: str, *, timed_out: bool = False) -> StackFailure:
    """Classify the combined stdout/stderr of a failed Docker or compose command."""
    if timed_out:
        return failure(FailureKind.TIMEOUT, output)
    for kind, pattern in _PATTERNS:
        if pattern.search(output):
            return failure(kind, output)
    return failure(FailureKind.OTHER, output)
