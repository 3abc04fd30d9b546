"""ASGI entry point: `daphne doce.asgi:application` (`manage.py serve` runs it through
`doce.webserver`, which adds doce's WebSocket message limit).

HTTP on the gateway listener (`DOCE_GATEWAY_PORT`) goes to the model gateway
(`gateway.proxy`) for `/gw/…` and is a 404 otherwise; on any other listener `/gw/…` is a 404.
The rest goes to Django, except `/.doce/*` (the preview access check the edge asks on every
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
from gateway import proxy  # noqa: E402
from projects.preview_access import PreviewAccessApp  # noqa: E402

_django = PreviewAccessApp(django_asgi_app)


async def _not_found(send) -> None:
    body = b"Not found.\n"
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def http_application(scope, receive, send) -> None:
    """Route HTTP between the model gateway and Django by listener and path (module docs)."""
    gateway_path = scope["path"].startswith(proxy.PATH_PREFIX)
    if proxy.on_gateway_listener(scope):
        if gateway_path:
            await proxy.application(scope, receive, send)
        else:
            await _not_found(send)
    elif gateway_path:
        await _not_found(send)
    else:
        await _django(scope, receive, send)


_websocket = DoceOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))  # type: ignore[arg-type]


async def websocket_application(scope, receive, send) -> None:
    """doce's sockets; refused on the gateway listener (containers get the gateway only)."""
    if proxy.on_gateway_listener(scope):
        await send({"type": "websocket.close", "code": 4404})
        return
    await _websocket(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http_application,
        # The routes are re_path() patterns of ASGI apps (see projects/routing.py).
        "websocket": websocket_application,
    }
)
