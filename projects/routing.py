"""WebSocket routes of the projects app."""

from django.urls import re_path

from projects.consumers import ChatConsumer
from projects.models import PROJECT_ID_PATTERN
from projects.streams import ProjectEventsConsumer

websocket_urlpatterns = [
    re_path(
        rf"^ws/projects/(?P<project_id>{PROJECT_ID_PATTERN})/events/$",
        ProjectEventsConsumer.as_asgi(),
    ),
    re_path(rf"^ws/projects/(?P<project_id>{PROJECT_ID_PATTERN})/chat/$", ChatConsumer.as_asgi()),
]
