"""WebSocket routes of the projects app."""

from django.urls import re_path

from projects.consumers import ChatConsumer
from projects.models import PROJECT_ID_PATTERN
from projects.streams import DashboardEventsConsumer, ProjectEventsConsumer, ProjectLogsConsumer

_PROJECT = rf"^ws/projects/(?P<project_id>{PROJECT_ID_PATTERN})"

# django-stubs types re_path() for views only; Channels routes ASGI apps with it too.
websocket_urlpatterns = [
    re_path(r"^ws/projects/events/$", DashboardEventsConsumer.as_asgi()),  # type: ignore[arg-type]
    re_path(rf"{_PROJECT}/events/$", ProjectEventsConsumer.as_asgi()),  # type: ignore[arg-type]
    re_path(rf"{_PROJECT}/chat/$", ChatConsumer.as_asgi()),  # type: ignore[arg-type]
    re_path(rf"{_PROJECT}/logs/$", ProjectLogsConsumer.as_asgi()),  # type: ignore[arg-type]
]
