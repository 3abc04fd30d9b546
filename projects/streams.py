"""Live project state for the workspace and dashboard: outbox events over a WebSocket."""

from __future__ import annotations

from channels.db import database_sync_to_async
from django.http import Http404

from doce.consumers import EventStreamConsumer
from projects.models import get_project_for_user


def project_topic(project_id: str) -> str:
    """Outbox topic of a project's events; also the queue serialization key of its jobs."""
    return f"project:{project_id}"


class ProjectEventsConsumer(EventStreamConsumer):
    """`ws/projects/<id>/events/`: status, job progress and deployment events of one project.

    Another user's project (or an unknown id) closes with 4404.
    """

    async def authorize(self) -> bool:
        project_id = self.scope["url_route"]["kwargs"]["project_id"]
        try:
            project = await database_sync_to_async(get_project_for_user)(self.user, project_id)
        except Http404:
            return False
        self.topics = [project_topic(project.id)]
        return True
