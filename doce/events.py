"""The event outbox: write state changes for live UIs atomically, wake consumers after commit.

Writers call `emit(topic, type, payload)` inside the transaction that makes the change; the
row commits or rolls back with it. After commit, a channel-layer group message wakes the
consumers of that topic at once (across processes with the Redis layer). Consumers
(`doce.consumers.EventStreamConsumer`) also poll the table, so an in-memory layer in another
process, or a lost wake-up, only delays an event — never loses it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import timedelta

import structlog
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from doce.models import Event

log = structlog.get_logger(__name__)

WAKE_MESSAGE = {"type": "events.wake"}


def group_name(topic: str) -> str:
    """Channel-layer group for `topic` (group names allow only [a-zA-Z0-9._-], < 100 chars)."""
    return "events." + hashlib.sha1(topic.encode(), usedforsecurity=False).hexdigest()


def emit(topic: str, type: str, payload: dict | None = None) -> Event:
    """Record event `type` on `topic` with a JSON-able `payload`; wake consumers after commit.

    Call it inside the transaction that makes the change. Returns the saved `Event`.
    """
    event = Event.objects.create(topic=topic, type=type, payload=payload or {})
    transaction.on_commit(lambda: wake(topic))
    return event


def wake(topic: str) -> None:
    """Tell consumers of `topic` to read the outbox now. Never raises: polling is the fallback."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group_name(topic), WAKE_MESSAGE)
    except Exception as exc:  # a down Redis must not fail the write that already committed
        log.warning("events.wake_failed", topic=topic, error=exc.__class__.__name__)


def events_after(topics: Iterable[str], after_id: int, limit: int = 200) -> list[Event]:
    """Events of `topics` with id > `after_id`, oldest first, at most `limit`."""
    return list(
        Event.objects.filter(topic__in=list(topics), id__gt=after_id).order_by("id")[:limit]
    )


def last_event_id(topics: Iterable[str] | None = None) -> int:
    """The newest event id of `topics`, or of every topic when `topics` is None (0 when
    there is none).

    A page that renders state and then resumes a stream after this id must read it BEFORE
    the state: events after it are replayed, so the page may get an event it already shows
    (harmless) but never misses a change. Read after the state, a change committed between
    the two reads is in neither (a Deploy tab once showed the old release live for good
    after a rollback that took 0.15 s).
    """
    newest = Event.objects.all() if topics is None else Event.objects.filter(topic__in=list(topics))
    return newest.order_by("-id").values_list("id", flat=True).first() or 0


def prune_events(older_than: timedelta) -> int:
    """Delete events older than `older_than`; returns how many rows were deleted."""
    deleted, _ = Event.objects.filter(created_at__lt=timezone.now() - older_than).delete()
    return deleted
