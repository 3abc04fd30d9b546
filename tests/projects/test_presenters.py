"""The dashboard's presenter: the same URLs and labels the template tags gave, built once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from projects.models import Project
from projects.presenters import dashboard_cards, project_url_maker


def test_it_builds_the_urls_reverse_would():
    for project_id in ("0123456789abcdef", "ffffffffffffffff", "aaaaaaaaaaaaaaaa"):
        workspace = project_url_maker("project-workspace")
        stop = project_url_maker("project-action", name="stop")
        assert workspace(project_id) == reverse("project-workspace", args=[project_id])
        assert stop(project_id) == reverse("project-action", args=[project_id, "stop"])


def test_it_refuses_a_route_without_the_project_id():
    with pytest.raises(ValueError, match="exactly once"):
        project_url_maker("project-action", name="f" * 16 + "x")


def test_it_gives_each_card_its_label_and_times():
    now = timezone.now()
    running = Project(id="0123456789abcdef", name="A", status="running")
    running.updated_at = now - timedelta(minutes=3)
    stopped = Project(id="fedcba9876543210", name="B", status="stopped")
    stopped.updated_at = now - timedelta(days=2, hours=1)
    first, second = dashboard_cards([running, stopped], now=now)
    assert (first["status_label"], first["stoppable"]) == (running.get_status_display(), True)
    assert (second["status_label"], second["stoppable"]) == (stopped.get_status_display(), False)
    assert first["edited_ago"] == "3\xa0minutes"
    assert second["edited_ago"] == "2\xa0days, 1\xa0hour"
    assert first["edited_iso"] == running.updated_at.isoformat()
    assert second["delete_url"] == "/projects/fedcba9876543210/actions/delete"
