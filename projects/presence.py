"""Who is looking at a project right now, recorded in the database so every web process
and the worker agree. A viewer is one open workspace WebSocket."""

from __future__ import annotations

import structlog
from django.utils import timezone

from projects import services
from projects.models import AgentState, Project, Viewer

log = structlog.get_logger(__name__)


def viewer_joined(project: Project, user, channel_name: str) -> None:
    """Record a viewer; the first viewer of a stopped project starts it, and of a running
    project whose agent sleeps wakes the agent."""
    now = timezone.now()
    Viewer.objects.update_or_create(
        channel_name=channel_name,
        defaults={"project": project, "user": user, "heartbeat_at": now},
    )
    services.mark_viewed(project)
    project.refresh_from_db(fields=["status", "agent_state"])
    if project.status == Project.Status.STOPPED:
        log.info("project.autostart", project_id=project.id)
        services.start_project(project)
    elif project.status == Project.Status.RUNNING and project.agent_state in (
        AgentState.STOPPED,
        AgentState.STOPPING,
    ):
        # The chat reads the agent: a viewer wakes a sleeping one (idle stop let it sleep).
        services.wake_agent(project)


def viewer_heartbeat(channel_name: str) -> None:
    """Keep a viewer alive (and its project's last-viewed time fresh)."""
    now = timezone.now()
    viewer = Viewer.objects.filter(channel_name=channel_name).first()
    if viewer is None:
        return
    Viewer.objects.filter(pk=viewer.pk).update(heartbeat_at=now)
    Project.objects.filter(pk=viewer.project_id).update(last_viewed_at=now)


def viewer_left(channel_name: str) -> None:
    """Forget a viewer (its project's last-viewed time stays: idle stop counts from there)."""
    viewer = Viewer.objects.filter(channel_name=channel_name).first()
    if viewer is not None:
        services.mark_viewed(viewer.project)
        viewer.delete()


def prune_stale_viewers() -> int:
    """Delete viewers whose heartbeat stopped (their web process died); returns how many."""
    live = Viewer.objects.live().values("pk")
    deleted, _ = Viewer.objects.exclude(pk__in=live).delete()
    return deleted
