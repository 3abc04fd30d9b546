"""Owner-only previews: the entry token, the preview cookie and the edge's access check.

The workspace frames `http://p-<id>.<preview domain>/.doce/enter?token=…` (and "Open in new
tab" opens the same kind of URL). The token is signed, bound to user and project, expires
after `ENTER_TOKEN_SECONDS` (60 s) and is redeemed once (its id is recorded in
`PreviewEntry`). Redeeming it sets the preview cookie on that host only and redirects to
`next` (a path on the preview). Every other preview request is checked by Caddy's
`forward_auth` against `/.doce/auth`: the cookie's signature, its user and project, then
whether that user (still active) owns the project, cached in-process for at most
`ACCESS_CACHE_SECONDS`, so a revoked user loses access within seconds. Anyone else gets
404, never a page that confirms the project exists.

The cookie is `SameSite=None; Secure; Partitioned` (CHIPS): a preview is cross-site to doce,
so a Lax cookie set inside doce's iframe would not be sent back. `*.localhost` is a secure
context, so `Secure` works over plain HTTP there; other hosts need HTTPS.

`PreviewAccessApp` answers `/.doce/*` in a small raw ASGI handler routed before Django
(`doce.asgi`): the check runs on every preview request and must stay light (no middleware,
no session, no query on a cache hit). `/.doce/ask` is Caddy's on-demand TLS permission
check: 200 only for the preview host of an existing project. `/.doce/bridge.js` is the preview
bridge (`preview_bridge.js`, public): the site template's dev server loads it, and it posts the
page's path and runtime errors to doce's origin, which it carries.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from functools import cache
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction

from doce.edge.config import (
    ASK_PATH,
    AUTH_PATH,
    BRIDGE_PATH,
    ENTER_PATH,
    PROJECT_HEADER,
    preview_host,
)
from projects.models import PreviewEntry, Project

ENTER_SALT = "doce.preview.enter"
COOKIE_SALT = "doce.preview.cookie"
COOKIE_NAME = "doce_preview"
ENTER_TOKEN_SECONDS = 60
ACCESS_CACHE_SECONDS = 3.0
_CACHE_MAX = 10_000
_PROJECT_HEADER = PROJECT_HEADER.lower().encode()

# (user id, project id) -> (allowed, monotonic expiry)
_access_cache: dict[tuple[int, str], tuple[bool, float]] = {}


def preview_origin(project_id: str) -> str:
    """`<scheme>://p-<id>.<DOCE_PREVIEW_DOMAIN>[:port]`: the scheme and port of doce's public
    URL (the edge serves both on one port)."""
    public = urlsplit(settings.DOCE_ORIGIN)  # normalized: scheme://host[:non-default port]
    host = preview_host(project_id, settings.DOCE_PREVIEW_DOMAIN)
    return f"{public.scheme}://{host}{f':{public.port}' if public.port else ''}"


def entry_token(user_id: int, project_id: str) -> str:
    """A fresh single-use entry token for `user_id` into `project_id`'s preview."""
    return signing.dumps(
        {"u": user_id, "p": project_id, "n": secrets.token_urlsafe(16)},
        salt=ENTER_SALT,
        compress=False,
    )


def entry_url(user_id: int, project_id: str, next_path: str = "/") -> str:
    """The preview's entry URL with a fresh token: what the workspace frames and opens;
    after the handshake the preview shows `next_path` (a path on the preview, `/` when it is
    anything else: see `safe_next`)."""
    token = entry_token(user_id, project_id)
    next_path = safe_next(next_path)
    suffix = "" if next_path == "/" else f"&next={quote(next_path, safe='/')}"
    return f"{preview_origin(project_id)}{ENTER_PATH}?token={token}{suffix}"


def cookie_value(user_id: int, project_id: str) -> str:
    """The signed preview cookie's value, bound to user and project (timestamped)."""
    return signing.dumps({"u": user_id, "p": project_id}, salt=COOKIE_SALT, compress=False)


def cookie_user(value: str, project_id: str) -> int | None:
    """The user a preview cookie was issued to for `project_id`; None when it is forged,
    expired (`DOCE_PREVIEW_COOKIE_SECONDS`) or for another project."""
    try:
        data = signing.loads(value, salt=COOKIE_SALT, max_age=settings.DOCE_PREVIEW_COOKIE_SECONDS)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("p") != project_id:
        return None
    user = data.get("u")
    return user if isinstance(user, int) and not isinstance(user, bool) else None


def owner_may_view(user_id: int, project_id: str) -> bool:
    """True when `user_id` is active and owns `project_id` (not being deleted). One query."""
    return (
        Project.objects.filter(pk=project_id, owner_id=user_id, owner__is_active=True)
        .exclude(status=Project.Status.DELETING)
        .exists()
    )


def may_view_cached(user_id: int, project_id: str) -> bool | None:
    """The cached answer of `owner_may_view`, or None when absent or stale."""
    hit = _access_cache.get((user_id, project_id))
    if hit is not None and hit[1] > time.monotonic():
        return hit[0]
    return None


def remember(user_id: int, project_id: str, allowed: bool) -> None:
    if len(_access_cache) >= _CACHE_MAX:
        _access_cache.clear()
    _access_cache[(user_id, project_id)] = (allowed, time.monotonic() + ACCESS_CACHE_SECONDS)


def redeem(token: str, project_id: str) -> int | None:
    """Redeem an entry token for `project_id`: the user id when it is genuine, fresh,
    unused, for this project and its owner; None otherwise (nothing says why)."""
    try:
        data = signing.loads(token, salt=ENTER_SALT, max_age=ENTER_TOKEN_SECONDS)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("p") != project_id:
        return None
    user, nonce = data.get("u"), data.get("n")
    if not isinstance(user, int) or not isinstance(nonce, str) or len(nonce) > 64:
        return None
    if not owner_may_view(user, project_id):
        return None
    try:
        with transaction.atomic():
            PreviewEntry.objects.create(token_id=nonce)
    except IntegrityError:  # replayed
        return None
    return user


def prune_entries() -> int:
    """Delete used-token records older than a token's lifetime (they can no longer be
    replayed: the signature has expired). Returns how many."""
    from datetime import timedelta

    from django.utils import timezone

    cutoff = timezone.now() - timedelta(seconds=ENTER_TOKEN_SECONDS * 2)
    deleted, _ = PreviewEntry.objects.filter(used_at__lt=cutoff).delete()
    return deleted


def safe_next(value: str) -> str:
    """`value` when it is a path on the same host (`/…`, not `//…` or `/\\…`, no control
    characters: it becomes a Location header), else `/`."""
    if not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        return "/"
    return value


# --- The raw ASGI handler -------------------------------------------------------------------

_NOT_FOUND = b"Not found.\n"


def _header(scope: dict, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


def _cookie(scope: dict) -> str:
    raw = _header(scope, b"cookie")
    if COOKIE_NAME not in raw:
        return ""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:
        return ""
    morsel = jar.get(COOKIE_NAME)
    return morsel.value if morsel is not None else ""


async def _respond(send, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b""):
    base = [
        (b"cache-control", b"no-store"),
        (b"content-length", str(len(body)).encode()),
    ]
    if body:
        base.append((b"content-type", b"text/plain; charset=utf-8"))
    await send({"type": "http.response.start", "status": status, "headers": base + headers})
    await send({"type": "http.response.body", "body": body})


async def _not_found(send) -> None:
    await _respond(send, 404, [], _NOT_FOUND)


async def check_access(scope: dict) -> bool:
    """The forward_auth decision for one preview request (see the module docstring)."""
    project_id = _header(scope, _PROJECT_HEADER)
    value = _cookie(scope)
    if not project_id or not value:
        return False
    user = cookie_user(value, project_id)
    if user is None:
        return False
    allowed = may_view_cached(user, project_id)
    if allowed is None:
        allowed = await sync_to_async(owner_may_view)(user, project_id)
        remember(user, project_id, allowed)
    return allowed


def _set_cookie(user: int, project_id: str) -> bytes:
    age = settings.DOCE_PREVIEW_COOKIE_SECONDS
    return (
        f"{COOKIE_NAME}={cookie_value(user, project_id)}; Max-Age={age}; Path=/; HttpOnly; "
        "Secure; SameSite=None; Partitioned"
    ).encode()


async def _enter(scope: dict, send) -> None:
    project_id = _header(scope, _PROJECT_HEADER)
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    token = (query.get("token") or [""])[0]
    if scope.get("method") != "GET" or not project_id or not token or len(token) > 1000:
        await _not_found(send)
        return
    user = await sync_to_async(redeem)(token, project_id)
    if user is None:
        await _not_found(send)
        return
    remember(user, project_id, True)
    location = safe_next((query.get("next") or ["/"])[0])
    await _respond(
        send,
        303,
        [
            (b"location", location.encode("utf-8")),
            (b"set-cookie", _set_cookie(user, project_id)),
            (b"referrer-policy", b"no-referrer"),
        ],
    )


def project_of_host(host: str) -> str | None:
    """The project id in a preview host name (`p-<id>.<preview domain>`), or None."""
    suffix = "." + settings.DOCE_PREVIEW_DOMAIN
    host = host.lower().rstrip(".")
    if not host.startswith("p-") or not host.endswith(suffix):
        return None
    project_id = host[2 : -len(suffix)]
    return project_id if project_id.isalnum() else None


# Other apps' hosts the edge may get certificates for (e.g. productions: live sites and
# their custom domains), registered with `register_host_check`.
_HOST_CHECKS: dict[str, Callable[[str], bool]] = {}


def register_host_check(name: str, check: Callable[[str], bool]) -> None:
    """Add (or replace) `check(host) -> bool`: True when this installation serves `host`
    (asked by the on-demand TLS `ask` endpoint, with the host lower-cased)."""
    _HOST_CHECKS[name] = check


def _host_exists(host: str) -> bool:
    if any(check(host.lower().rstrip(".")) for check in _HOST_CHECKS.values()):
        return True
    if host.lower() == settings.DOCE_DOMAIN:
        return True
    project_id = project_of_host(host)
    return project_id is not None and (
        Project.objects.filter(pk=project_id).exclude(status=Project.Status.DELETING).exists()
    )


async def _ask(scope: dict, send) -> None:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    domain = (query.get("domain") or [""])[0]
    ok = bool(domain) and len(domain) < 256 and await sync_to_async(_host_exists)(domain)
    await _respond(send, 200 if ok else 404, [], b"ok\n" if ok else _NOT_FOUND)


@cache
def _bridge_source() -> str:
    return Path(__file__).with_name("preview_bridge.js").read_text()


def bridge_script() -> bytes:
    """The preview bridge with doce's origin (`DOCE_ORIGIN`) filled in: the one window its
    messages go to."""
    origin = json.dumps(settings.DOCE_ORIGIN)
    return _bridge_source().replace('"__DOCE_ORIGIN__"', origin).encode()


async def _bridge(send) -> None:
    body = bridge_script()
    headers = [
        (b"content-type", b"text/javascript; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-cache"),
        (b"x-content-type-options", b"nosniff"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class PreviewAccessApp:
    """ASGI app answering `/.doce/enter`, `/.doce/auth`, `/.doce/ask` and `/.doce/bridge.js`
    and passing every
    other request to `inner` (Django). Caddy sends `/.doce/*` of preview hosts here with the
    project header set; on doce's own host the edge answers `/.doce/*` with 404 itself."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/.doce/"):
            await self.inner(scope, receive, send)
            return
        if path == AUTH_PATH:
            if await check_access(scope):
                await _respond(send, 204, [])
            else:
                await _not_found(send)
        elif path == ENTER_PATH:
            await _enter(scope, send)
        elif path == ASK_PATH:
            await _ask(scope, send)
        elif path == BRIDGE_PATH:
            await _bridge(send)
        else:
            await _not_found(send)
