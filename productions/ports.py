"""Loopback host ports of server releases' containers, from `DOCE_PROD_PORT_RANGE`.

A port is unique across releases (`Release.port`, a unique column) and checked free on the
host before it is stored; a container's port is freed when the container is removed.
"""

from __future__ import annotations

import random

from django.conf import settings
from django.db import IntegrityError, transaction

from doce.docker.failures import FailureKind, StackError, StackFailure
from productions.models import Release
from projects.ports import port_is_free

PORTS_EXHAUSTED = StackFailure(
    kind=FailureKind.PORT_IN_USE,
    message="No free host ports are left in DOCE_PROD_PORT_RANGE. An operator must widen it.",
    retryable=False,
)


def allocate_release_port(release: Release) -> int:
    """Give `release` a free loopback port and save it; returns it. Raises `StackError`
    (`PORT_IN_USE`, not retryable) when the range has none."""
    low, high = settings.DOCE_PROD_PORT_RANGE
    taken = set(Release.objects.filter(port__isnull=False).values_list("port", flat=True))
    candidates = [p for p in range(low, high + 1) if p not in taken]
    if candidates:
        start = random.randrange(len(candidates))  # noqa: S311 (spreads workers)
        candidates = candidates[start:] + candidates[:start]
    for port in candidates:
        if not port_is_free("127.0.0.1", port):
            continue
        try:
            with transaction.atomic():
                Release.objects.filter(pk=release.pk).update(port=port)
        except IntegrityError:
            continue
        release.port = port
        return port
    raise StackError(PORTS_EXHAUSTED)
