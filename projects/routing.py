"""WebSocket routes of the projects app."""

websocket_urlpatterns: list = []
