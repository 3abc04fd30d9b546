"""Live queue monitor streams: outbox events of the jobs a user may see."""

from __future__ import annotations

from channels.db import database_sync_to_async
from django.http import Http404

from doce.consumers import EventStreamConsumer
from jobqueue.views import get_job_for_user, job_topics, monitor_topics


class QueueEventsConsumer(EventStreamConsumer):
    """`ws/queue/events/`: `job.*` and `queue.*` events; staff get topic `queue`, others the
    topics of their own projects. Resumes after `?after=<event id>`."""

    async def authorize(self) -> bool:
        self.topics = await database_sync_to_async(monitor_topics)(self.user)
        return True


class JobEventsConsumer(EventStreamConsumer):
    """`ws/queue/jobs/<id>/events/`: state changes and log lines of one job.

    Another user's job (or an unknown id) closes with 4404.
    """

    async def authorize(self) -> bool:
        job_id = self.scope["url_route"]["kwargs"]["job_id"]
        try:
            job = await database_sync_to_async(get_job_for_user)(self.user, job_id)
        except Http404:
            return False
        self.job_id = job.pk
        self.topics = job_topics(self.user, job)
        return True

    async def send_json(self, content, close: bool = False) -> None:
        payload = content.get("payload", {})
        job_id = payload.get("job", {}).get("id", payload.get("job_id"))
        if job_id == self.job_id or close:
            await super().send_json(content, close)
