"""doce's own origin: the one place that decides whether a browser origin is doce's.

An origin is `scheme://host[:port]` (RFC 6454): a page on another port of the same host, the
same host over the other scheme, or a preview host (`p-<id>.localhost`) is a different
origin. doce's origin comes from `DOCE_PUBLIC_URL` (settings: `DOCE_ORIGIN`); WebSocket
handshakes (`doce.consumers.DoceOriginValidator`, in `doce.asgi`) and Django's CSRF check
(`CSRF_TRUSTED_ORIGINS`) accept only that one. Pure functions: `doce.settings` uses them too.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """The normalized origin of `url`: lowercase scheme and host, the default port left out
    (`http://LocalHost:80/` → `http://localhost`). None when `url` is not an http(s) URL
    without credentials, path (other than `/`), query or fragment."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:  # a port that is not a number, or out of range
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.username is not None or parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def is_doce_origin(origin: str | None) -> bool:
    """True when `origin` (an `Origin` header's value) is exactly doce's own origin."""
    return origin is not None and origin_of(origin) == settings.DOCE_ORIGIN
