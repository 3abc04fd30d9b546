"""WebSocket test helpers."""

from __future__ import annotations

from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore


def session_cookie(user) -> bytes:
    """A `Cookie` header value signing `user` in (for ASGI-level WebSocket tests)."""
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}".encode()


def origin_header() -> tuple[bytes, bytes]:
    """The `Origin` header a page of doce itself sends (`DOCE_ORIGIN`)."""
    return (b"origin", settings.DOCE_ORIGIN.encode())


def ws_communicator(
    path: str, cookie: bytes | None = None, *, origin: str | None = None
) -> WebsocketCommunicator:
    """A communicator for the full ASGI app (origin check and session auth included), from
    doce's own origin unless `origin` says otherwise."""
    from doce.asgi import application

    headers = [
        origin_header() if origin is None else (b"origin", origin.encode()),
        (b"host", b"localhost"),
    ]
    if cookie:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, path, headers=headers)


async def refusal_code(communicator: WebsocketCommunicator) -> int | None:
    """Connect and return the close code the consumer refused with (doce's consumers accept
    and then close, so browsers see the code), or None when the socket stayed open."""
    connected, code = await communicator.connect()
    if not connected:
        return code
    message = await communicator.receive_output(timeout=2)
    return message.get("code") if message["type"] == "websocket.close" else None
