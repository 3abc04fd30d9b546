"""Account-level models. Users are Django's own `auth.User`."""

from __future__ import annotations

from django.db import models


class Instance(models.Model):
    """The single row describing this doce installation (id=1, created by migration).

    First-run setup locks this row, so two concurrent setup submissions create one admin.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    setup_completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "instance"

    def __str__(self) -> str:
        return "doce instance"

    @classmethod
    def get(cls) -> Instance:
        """Return the instance row, creating it if a database was made without migrations."""
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj
