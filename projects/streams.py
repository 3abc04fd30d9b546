"""Live project state for the workspace and dashboard: outbox events over a WebSocket."""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.http import Http404

from doce.consumers import AuthenticatedConsumer, EventStreamConsumer
from doce.docker.logs import read_log
from projects import presence
from projects.models import get_project_for_user, project_topic, visible_topics


class ProjectEventsConsumer(EventStreamConsumer):
    """`ws/projects/<id>/events/`: status, job progress and deployment events of one project.

    Another user's project (or an unknown id) closes with 4404. Each connection is a
    *viewer* (a `Viewer` row kept fresh by a heartbeat every `DOCE_VIEWER_HEARTBEAT_SECONDS`,
    so presence works across web processes): the first viewer of a stopped project starts
    it, and a project without viewers is stopped after `DOCE_IDLE_STOP_SECONDS`.
    """

    async def authorize(self) -> bool:
        project_id = self.scope["url_route"]["kwargs"]["project_id"]
        try:
            self.project = await database_sync_to_async(get_project_for_user)(self.user, project_id)
        except Http404:
            return False
        self.topics = [project_topic(self.project.id)]
        return True

    async def on_accepted(self) -> None:
        await super().on_accepted()
        await database_sync_to_async(presence.viewer_joined)(
            self.project, self.user, self.channel_name
        )
        self.presence_task = asyncio.create_task(self._heartbeat())

    async def disconnect(self, code: int) -> None:
        await super().disconnect(code)
        task = getattr(self, "presence_task", None)
        if task is not None:
            task.cancel()
            await database_sync_to_async(presence.viewer_left)(self.channel_name)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(settings.DOCE_VIEWER_HEARTBEAT_SECONDS)
            await database_sync_to_async(presence.viewer_heartbeat)(self.channel_name)


class DashboardEventsConsumer(EventStreamConsumer):
    """`ws/projects/events/`: the events of all the user's projects, for the dashboard."""

    async def authorize(self) -> bool:
        self.topics = await database_sync_to_async(visible_topics)(self.user)
        return True


class ProjectLogsConsumer(AuthenticatedConsumer):
    """`ws/projects/<id>/logs/[?offset=N]`: a live tail of the project's docker.log.

    Sends `{"type": "log.chunk", "text", "offset", "skipped"}`: `offset` is where the next
    read starts (send it back as `?offset=` after a reconnect to resume exactly there);
    `skipped` says earlier lines were left out (first read without an offset, or the log
    rotated). Polls the file every `DOCE_LOG_POLL_SECONDS`; memory is bounded per read.
    """

    async def authorize(self) -> bool:
        project_id = self.scope["url_route"]["kwargs"]["project_id"]
        try:
            self.project = await database_sync_to_async(get_project_for_user)(self.user, project_id)
        except Http404:
            return False
        return True

    async def on_accepted(self) -> None:
        raw = self.query_param("offset")
        self.offset = int(raw) if raw is not None and raw.isdigit() else None
        self.tail_task = asyncio.create_task(self._tail())

    async def disconnect(self, code: int) -> None:
        task = getattr(self, "tail_task", None)
        if task is not None:
            task.cancel()

    async def receive_json(self, content, **kwargs) -> None:
        """The stream takes no client messages; anything sent is ignored."""

    async def _tail(self) -> None:
        first = True
        while True:
            chunk = await sync_to_async(read_log)(self.project, self.offset)
            skipped = (
                chunk.truncated if self.offset is None else chunk.next_offset < (self.offset or 0)
            )
            more_waiting = self.offset is not None and chunk.truncated
            if chunk.text or first or skipped:
                await self.send_json(
                    {
                        "type": "log.chunk",
                        "text": chunk.text,
                        "offset": chunk.next_offset,
                        "skipped": skipped,
                    }
                )
            first = False
            self.offset = chunk.next_offset
            if not more_waiting:
                await asyncio.sleep(settings.DOCE_LOG_POLL_SECONDS)
