"""The Redis channel layer wakes event consumers at once across processes (what lets web and
worker processes run apart): with polling slowed to 30 s, an event emitted by another process
still arrives within a moment. With the in-memory layer it would wait for the poll.

An idle consumer must survive silence: channels-redis 4.3 under redis-py 8 raised
`TimeoutError` 5 s after the last message and closed every socket with 1011.
"""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from channels_redis.core import RedisChannelLayer
from django.conf import settings as django_settings

from doce.asgi import application
from projects.models import Project, project_topic
from tests.conftest import REDIS_URL
from tests.ws import origin_header, session_cookie

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def redis_layer(settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # The shape doce/settings.py gives the layer when REDIS_URL is set.
            "CONFIG": {
                "hosts": [
                    {"address": REDIS_URL, "socket_timeout": django_settings.REDIS_SOCKET_TIMEOUT}
                ]
            },
        }
    }
    settings.DOCE_EVENTS_POLL_SECONDS = 30
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


async def test_it_wakes_a_consumer_through_redis(alice, redis_layer):
    project = await sync_to_async(Project.objects.create)(owner=alice, name="Site", prompt="p")
    cookie = await sync_to_async(session_cookie)(alice)
    viewer = WebsocketCommunicator(
        application,
        f"/ws/projects/{project.id}/events/",
        headers=[origin_header(), (b"cookie", cookie)],
    )
    connected, _ = await viewer.connect()
    assert connected
    await asyncio.sleep(0.3)  # let the consumer join its group and finish its first read
    # Emitted by another process, as the worker would, on the same database.
    await asyncio.to_thread(emit_in_another_process, project_topic(project.id))
    # Well inside the 30 s poll: only the Redis wake-up can deliver it this soon.
    message = await viewer.receive_json_from(timeout=15)
    assert message["type"] == "project.status"
    await viewer.disconnect()


SILENCE_SECONDS = 16


async def test_it_keeps_an_idle_consumer_open_through_silence(alice, redis_layer):
    project = await sync_to_async(Project.objects.create)(owner=alice, name="Site", prompt="p")
    cookie = await sync_to_async(session_cookie)(alice)
    viewer = WebsocketCommunicator(
        application,
        f"/ws/projects/{project.id}/events/",
        headers=[origin_header(), (b"cookie", cookie)],
    )
    connected, _ = await viewer.connect()
    assert connected
    await asyncio.sleep(SILENCE_SECONDS)
    # Still open: nothing (a close frame or a dead consumer's error) arrived meanwhile.
    assert await viewer.receive_nothing(timeout=0.1)
    await asyncio.to_thread(emit_in_another_process, project_topic(project.id))
    message = await viewer.receive_json_from(timeout=15)
    assert message["type"] == "project.status"
    await viewer.disconnect()


async def test_it_waits_on_an_idle_channel_with_the_default_redis_timeouts():
    """The pinned dependency set itself (no socket_timeout given): a blocked `receive()`
    outlives 15 s of silence and then gets the message."""
    layer = RedisChannelLayer(hosts=[REDIS_URL])
    channel = await layer.new_channel()
    receiver = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(SILENCE_SECONDS)
    assert not receiver.done(), receiver.exception() if receiver.done() else None
    await layer.send(channel, {"type": "hello"})
    message = await asyncio.wait_for(receiver, timeout=10)
    assert message["type"] == "hello"
    await layer.close_pools()


def emit_in_another_process(topic: str) -> None:
    from django.db import connection

    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
        "REDIS_URL": REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "doce.settings",
    }
    code = (
        "import django; django.setup()\n"
        "from django.db import transaction\n"
        "from doce import events\n"
        "with transaction.atomic():\n"
        f"    events.emit({topic!r}, 'project.status', {{'status': 'running'}})\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], cwd=root, env=env, check=True, timeout=60)
