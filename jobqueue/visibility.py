"""Which jobs a user may see: the queue asks the domain apps, through a hook.

The queue knows serialization keys, not what they belong to. A domain app that runs jobs
for its users registers, in its `AppConfig.ready()`, a function saying which serial keys a
user owns (projects: `project:<id>` of each of the user's projects); the queue's monitor,
its WebSocket streams and `Job.objects.for_user` all ask `visible_serial_keys(user)`. Staff
see every job and are not asked about. Serial keys double as outbox topics: the queue writes
a job's events to its serial key's topic, so the same keys are the topics a user may watch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

# name -> fn(user) -> the serial keys of jobs that user may see
_PROVIDERS: dict[str, Callable[[Any], Iterable[str]]] = {}


def register_visible_keys(name: str, provider: Callable[[Any], Iterable[str]]) -> None:
    """Add (or, for a known `name`, replace) a provider of the serial keys a user may see.

    `provider(user)` is called with an authenticated, non-staff user and returns the serial
    keys (strings) of the jobs that user owns.
    """
    _PROVIDERS[name] = provider


def visible_serial_keys(user) -> list[str]:
    """The serial keys of the jobs `user` may see, from every registered provider (sorted,
    no duplicates); [] for an anonymous user. Staff see all jobs: callers check that first."""
    if not getattr(user, "is_authenticated", False):
        return []
    keys: set[str] = set()
    for provider in _PROVIDERS.values():
        keys.update(provider(user))
    return sorted(keys)
