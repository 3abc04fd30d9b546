"""WebSocket routes of the queue monitor."""

from django.urls import re_path

from jobqueue.consumers import JobEventsConsumer, QueueEventsConsumer

# django-stubs types re_path() for views only; Channels routes ASGI apps with it too.
websocket_urlpatterns = [
    re_path(r"^ws/queue/events/$", QueueEventsConsumer.as_asgi()),  # type: ignore[arg-type]
    re_path(r"^ws/queue/jobs/(?P<job_id>[0-9]{1,18})/events/$", JobEventsConsumer.as_asgi()),  # type: ignore[arg-type]
]
