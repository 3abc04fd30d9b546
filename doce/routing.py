"""WebSocket URL routes of every app, gathered for `doce.asgi`."""

from jobqueue.routing import websocket_urlpatterns as queue_routes
from projects.routing import websocket_urlpatterns as project_routes

websocket_urlpatterns = [*project_routes, *queue_routes]
