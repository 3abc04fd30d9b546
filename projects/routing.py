"""WebSocket routes of the projects app."""

from django.urls import re_path

from projects.consumers import ChatConsumer
from projects.models import PROJECT_ID_PATTERN

websocket_urlpatterns: list = [
    re_path(rf"^ws/projects/(?P<project_id>{PROJECT_ID_PATTERN})/chat/$", ChatConsumer.as_asgi()),
]
