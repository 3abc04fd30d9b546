"""ASGI entry point: `daphne doce.asgi:application` (`manage.py serve` runs it through
`doce.webserver`, which adds doce's WebSocket message limit).

HTTP goes to Django, except `/.doce/*` (the preview access check the edge asks on every
preview request, the entry handshake and the TLS `ask`): a small raw handler
(`projects.preview_access.PreviewAccessApp`) answers those before Django's middleware, so
the check stays light. WebSockets go through the exact-origin check (`doce.origins`) and
Django's session authentication before reaching a consumer. A path no app routes reaches
`doce.consumers.NotFoundConsumer` (closed with 4404), never an error.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "doce.settings")
# Django must be set up before anything imports models (the consumers do).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from doce.consumers import DoceOriginValidator  # noqa: E402
from doce.routing import websocket_urlpatterns  # noqa: E402
from projects.preview_access import PreviewAccessApp  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": PreviewAccessApp(django_asgi_app),
        # The routes are re_path() patterns of ASGI apps (see projects/routing.py).
        "websocket": DoceOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))  # type: ignore[arg-type]
        ),
    }
)
