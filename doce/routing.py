"""WebSocket URL routes of every app, gathered for `doce.asgi`."""

from projects.routing import websocket_urlpatterns as project_routes

websocket_urlpatterns = [*project_routes]
