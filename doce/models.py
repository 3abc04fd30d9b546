"""Shared models: the event outbox, and the Docker Engine health a worker records."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Event(models.Model):
    """One state change for live UIs, written in the same transaction as the change.

    `topic` names who may see it: `project:<id>` for a project's changes (also the queue's
    serialization key for that project's jobs), `queue` for every job change (staff monitor).
    Consumers send events after the last id a client saw, so a reconnect loses nothing.
    """

    id = models.BigAutoField(primary_key=True)
    topic = models.CharField(max_length=100)
    type = models.CharField(max_length=64)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # Consumers read "events of these topics after id N".
            models.Index(fields=["topic", "id"], name="doce_event_topic_id"),
            # prune_events deletes by age.
            models.Index(fields=["created_at"], name="doce_event_created"),
        ]

    def __str__(self) -> str:
        return f"{self.type} on {self.topic} (#{self.id})"

    def as_message(self) -> dict:
        """The JSON shape sent to browsers: {id, topic, type, time, payload}."""
        return {
            "id": self.id,
            "topic": self.topic,
            "type": self.type,
            "time": self.created_at.isoformat(),
            "payload": self.payload,
        }


class EngineHealth(models.Model):
    """The Docker Engine as a worker last saw it (one row, id 1).

    Written by a worker's housekeeping (`doce.engine_health.record_engine_health`) and when
    a job finds the Engine unreachable; read by the web process (dashboard, `/healthz`),
    which never calls the Engine per request.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    reachable = models.BooleanField(default=False)
    version = models.CharField(max_length=64, blank=True, default="")
    checked_at = models.DateTimeField(default=timezone.now)
    # When the current outage began (None while reachable): how long work has been held.
    unreachable_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "engine health"

    def __str__(self) -> str:
        return "reachable" if self.reachable else "unreachable"
