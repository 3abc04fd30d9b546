"""WebSocket URL routes of every app, gathered for `doce.asgi`; anything else gets 4404."""

from django.urls import re_path

from doce.consumers import NotFoundConsumer
from jobqueue.routing import websocket_urlpatterns as queue_routes
from projects.routing import websocket_urlpatterns as project_routes

websocket_urlpatterns = [
    *project_routes,
    *queue_routes,
    # Last: an unknown path would otherwise make the router raise (a 500 in the handshake).
    # django-stubs types re_path() for views only; Channels routes ASGI apps with it too.
    re_path(r"", NotFoundConsumer.as_asgi()),  # type: ignore[arg-type]
]
