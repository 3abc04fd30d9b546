"""Host ports of project stacks: allocated from DOCE_PORT_RANGE, unique, checked free.

Ports come in pairs: an even preview port and the odd agent port right after it. With the
two unique columns (`preview_port`, `agent_port` of projects and of warm pool entries) this
makes a port unique across both columns without a lock: a preview port can never equal an
agent port. Projects and pool entries draw from the one range (pool entries count toward
it); a claim moves an entry's pair to the project in one transaction. A port is
checked free on the host by binding it on 127.0.0.1 (where both are published: browsers
reach previews through the edge) before it is stored.
"""

from __future__ import annotations

import random
import socket

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from doce.docker.failures import FailureKind, StackError, StackFailure
from doce.docker.stacks import stack_status
from projects import edge
from projects.models import PoolEntry, Project, StackFiles

# Both are published on loopback only: browsers reach previews through the edge.
PREVIEW_ADDRESS = "127.0.0.1"
AGENT_ADDRESS = "127.0.0.1"

PORTS_EXHAUSTED = StackFailure(
    kind=FailureKind.PORT_IN_USE,
    message=(
        "No free host ports are left in DOCE_PORT_RANGE. An operator must widen the range "
        "(or delete unused projects)."
    ),
    retryable=False,
)


def port_is_free(address: str, port: int) -> bool:
    """True when nothing listens on `address:port` (checked by binding it for a moment)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # Connections that just closed (TIME_WAIT, e.g. after a stop) do not make a port
        # busy; only a listener does. Without this a restarted project would lose its ports.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address.strip("[]"), port))
        except OSError:
            return False
    return True


def _pair_starts(low: int, high: int) -> list[int]:
    first = low if low % 2 == 0 else low + 1
    return list(range(first, high, 2))  # high itself can't start a pair: its agent port > high


def allocate_ports(project: StackFiles) -> tuple[int, int]:
    """Give `project` (a `Project` or a `PoolEntry`) a fresh (preview port, agent port)
    pair and save it.

    Candidates are pairs not stored for any other project or pool entry, tried from a
    random point in the range, and checked free on the host. Raises `StackError` (`PORT_IN_USE`, not
    retryable) when the range has no free pair.
    """
    low, high = settings.DOCE_PORT_RANGE
    starts = _pair_starts(low, high)
    taken_ports = _taken_ports(project)
    offset = random.randrange(len(starts)) if starts else 0  # noqa: S311 (spreads workers)
    for start in starts[offset:] + starts[:offset]:
        if start in taken_ports or start + 1 in taken_ports:
            continue
        if not (port_is_free(PREVIEW_ADDRESS, start) and port_is_free(AGENT_ADDRESS, start + 1)):
            continue
        try:
            with transaction.atomic():
                type(project)._default_manager.filter(pk=project.pk).update(
                    preview_port=start, agent_port=start + 1
                )
        except IntegrityError:  # another worker stored this pair a moment ago
            continue
        project.preview_port, project.agent_port = start, start + 1
        edge.request_sync()  # a routed preview's port changed
        return start, start + 1
    raise StackError(PORTS_EXHAUSTED)


def _taken_ports(holder: StackFiles) -> set[int]:
    taken: set[int] = set()
    for model in (Project, PoolEntry):
        rows = model.objects.filter(Q(preview_port__isnull=False) | Q(agent_port__isnull=False))
        if isinstance(holder, model):
            rows = rows.exclude(pk=holder.pk)
        for pair in rows.values_list("preview_port", "agent_port").iterator():
            taken.update(port for port in pair if port is not None)
    return taken


def ensure_ports(project: StackFiles) -> tuple[int, int]:
    """The project's ports, allocating a new pair when it has none or when one of them is
    now held by another program (a port its own running container holds is kept).

    Call before rendering the stack for `up`: after a `PORT_IN_USE` failure the next
    attempt gets a new pair this way. Raises `StackError`.
    """
    if project.preview_port is None or project.agent_port is None:
        return allocate_ports(project)
    status = stack_status(project.stack_name)
    preview_ok = status.state("preview") == "running" or port_is_free(
        PREVIEW_ADDRESS, project.preview_port
    )
    agent_ok = status.state("agent") == "running" or port_is_free(AGENT_ADDRESS, project.agent_port)
    if preview_ok and agent_ok:
        return project.preview_port, project.agent_port
    return allocate_ports(project)


def release_ports(project: StackFiles) -> None:
    """Forget the project's (or pool entry's) ports (on delete), so others can use them."""
    type(project)._default_manager.filter(pk=project.pk).update(preview_port=None, agent_port=None)
    project.preview_port = project.agent_port = None
