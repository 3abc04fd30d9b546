"""Live project state for the workspace and dashboard: outbox events over a WebSocket."""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.http import Http404

from doce import events
from doce.consumers import DoceConsumer, EventStreamConsumer
from doce.docker.logs import read_log
from projects import presence
from projects.models import get_project_for_user, owner_topic, project_topic, visible_topics


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

    async def on_disconnect(self, code: int) -> None:
        await super().on_disconnect(code)
        task = getattr(self, "presence_task", None)
        if task is not None:
            task.cancel()
            await database_sync_to_async(presence.viewer_left)(self.channel_name)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(settings.DOCE_VIEWER_HEARTBEAT_SECONDS)
            await database_sync_to_async(presence.viewer_heartbeat)(self.channel_name)


class DashboardEventsConsumer(EventStreamConsumer):
    """`ws/projects/events/`: the events of all the user's projects, for the dashboard, and
    `project.created` of the user's new projects (from any tab or the API), whose events it
    follows from then on."""

    async def authorize(self) -> bool:
        topics = await database_sync_to_async(visible_topics)(self.user)
        self.topics = [*topics, owner_topic(self.user.pk)]
        return True

    def wants(self, message: dict) -> bool:
        if message.get("type") == "project.created" and message.get("topic") == owner_topic(
            self.user.pk
        ):
            topic = project_topic(str((message.get("payload") or {}).get("id") or ""))
            if topic not in self.topics:
                self.topics.append(topic)
                asyncio.get_running_loop().create_task(
                    self.channel_layer.group_add(events.group_name(topic), self.channel_name)
                )
        return True


class ProjectLogsConsumer(DoceConsumer):
    """`ws/projects/<id>/logs/[?offset=N]`: a live tail of the project's docker.log.

    Sends `{"type": "log.chunk", "text", "offset", "skipped"}`: `offset` is where the next
    read starts (send it back as `?offset=` after a reconnect to resume exactly there);
    `skipped` says earlier lines were left out (first read without an offset, or the log
    rotated). Polls the file every `DOCE_LOG_POLL_SECONDS`; memory is bounded per read. A
    malformed `offset` closes with 4400; client messages are answered with an error.
    """

    async def authorize(self) -> bool:
        project_id = self.scope["url_route"]["kwargs"]["project_id"]
        try:
            self.project = await database_sync_to_async(get_project_for_user)(self.user, project_id)
        except Http404:
            return False
        return True

    async def on_accepted(self) -> None:
        self.offset = self.cursor_param("offset")
        self.tail_task = asyncio.create_task(self._tail())

    async def on_disconnect(self, code: int) -> None:
        task = getattr(self, "tail_task", None)
        if task is not None:
            task.cancel()

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
