"""Render the edge's configuration from settings and the registered routes, and load it.

The database is the truth; Caddy's configuration is derived from it. `sync()` is what the
`edge.sync` job, `manage.py edge sync` and `manage.py serve` call.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from doce.edge.admin import AdminClient
from doce.edge.config import (
    ASK_PATH,
    EdgeGateway,
    EdgeLimits,
    EdgeSite,
    EdgeTls,
    render_config,
)
from doce.edge.routes import collect_routes


def edge_dir() -> Path:
    """`DOCE_DATA_DIR/edge`: the admin socket, the bootstrap config, Caddy's storage."""
    path = Path(settings.DATA_DIR) / "edge"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def admin_socket() -> str:
    """The unix socket path of Caddy's admin API."""
    return str(edge_dir() / "admin.sock")


def web_upstreams() -> tuple[str, ...]:
    """The web processes the edge load-balances (`host:port`, from `DOCE_WEB_UPSTREAMS`:
    by default every web slot's loopback port, `127.0.0.1:<DOCE_WEB_PORT + i>`)."""
    return tuple(settings.DOCE_WEB_UPSTREAMS)


def edge_gateway() -> EdgeGateway | None:
    """The model gateway's front on the edge when the web processes serve it on ports of
    their own (`DOCE_GATEWAY_UPSTREAMS`, several web slots): Caddy listens on the gateway's
    addresses (`DOCE_GATEWAY_BIND`, required then: the settings refuse to start without it,
    so rendering never asks the Docker Engine) on `DOCE_GATEWAY_PORT`. None with one web
    process (it listens itself)."""
    if not settings.DOCE_GATEWAY_UPSTREAMS:
        return None
    port = settings.DOCE_GATEWAY_PORT
    listen = tuple(
        f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        for address in dict.fromkeys(settings.DOCE_GATEWAY_BIND)
    )
    return EdgeGateway(listen=listen, upstreams=tuple(settings.DOCE_GATEWAY_UPSTREAMS))


def edge_site() -> EdgeSite:
    """The `EdgeSite` the settings describe (`DOCE_HOST`, `DOCE_PORT`, `DOCE_DOMAIN`,
    `DOCE_PREVIEW_DOMAIN`, `DOCE_WEB_UPSTREAMS`, `DOCE_GATEWAY_UPSTREAMS`, the TLS and
    limit settings)."""
    if settings.DOCE_TLS_CERT_FILE:
        mode = "files"
    elif settings.DOCE_TLS_INTERNAL:
        mode = "internal"
    elif settings.DOCE_HTTPS:
        mode = "acme"
    else:
        mode = "off"
    tls = EdgeTls(
        mode=mode,  # type: ignore[arg-type]
        email=settings.DOCE_ACME_EMAIL,
        cert_file=settings.DOCE_TLS_CERT_FILE,
        key_file=settings.DOCE_TLS_KEY_FILE,
        # Caddy asks one web process; while it is down, new preview hosts wait for a
        # certificate (existing ones are unaffected).
        ask_url=f"http://{web_upstreams()[0]}{ASK_PATH}",
    )
    limits = EdgeLimits(
        body_bytes=settings.DOCE_EDGE_MAX_BODY_BYTES,
        upload_bytes=settings.DOCE_EDGE_MAX_UPLOAD_BYTES,
        upload_paths=tuple(settings.DOCE_EDGE_UPLOAD_PATHS),
        prompt_bytes=settings.DOCE_EDGE_MAX_PROMPT_BYTES,
        prompt_paths=tuple(settings.DOCE_EDGE_PROMPT_PATHS),
        preview_body_bytes=settings.DOCE_EDGE_MAX_PREVIEW_BODY_BYTES,
        header_bytes=settings.DOCE_EDGE_MAX_HEADER_BYTES,
        read_header_seconds=settings.DOCE_EDGE_READ_HEADER_SECONDS,
        read_body_seconds=settings.DOCE_EDGE_READ_BODY_SECONDS,
    )
    return EdgeSite(
        listen_host=settings.DOCE_HOST,
        listen_port=settings.DOCE_PORT,
        doce_domain=settings.DOCE_DOMAIN,
        preview_domain=settings.DOCE_PREVIEW_DOMAIN,
        upstreams=web_upstreams(),
        admin_socket=admin_socket(),
        storage_dir=str(edge_dir() / "storage"),
        tls=tls,
        limits=limits,
        gateway=edge_gateway(),
    )


def current_config() -> dict:
    """The configuration the database calls for now."""
    previews, sites = collect_routes()
    return render_config(edge_site(), previews, sites)


@dataclass(frozen=True)
class SyncResult:
    """What a sync loaded: the number of preview and site routes."""

    previews: int
    sites: int


@contextmanager
def _sync_lock() -> Iterator[None]:
    # One sync at a time on this machine (web, worker, serve): each renders after the
    # previous one loaded, so the last load is always of the newest state.
    fd = os.open(edge_dir() / "sync.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def sync(client: AdminClient | None = None) -> SyncResult:
    """Render the configuration and load it into the running Caddy (`POST /load`), under a
    machine-wide lock. Caddy applies an identical configuration as a no-op.

    Raises `doce.edge.admin.EdgeUnavailable` when Caddy does not answer, `EdgeRejected`
    when it refuses the configuration.
    """
    own = client is None
    client = client or AdminClient(admin_socket())
    try:
        with _sync_lock():
            previews, sites = collect_routes()
            client.load(render_config(edge_site(), previews, sites))
    finally:
        if own:
            client.close()
    return SyncResult(previews=len(previews), sites=len(sites))


def in_sync() -> tuple[bool, str]:
    """(True, "") when the running Caddy's configuration is what the database calls for;
    else (False, why). Never raises."""
    from doce.edge.admin import EdgeRejected, EdgeUnavailable

    try:
        with AdminClient(admin_socket(), timeout=2.0) as client:
            running = client.get_config()
    except (EdgeUnavailable, EdgeRejected):
        return False, "Caddy's admin API does not answer"
    try:
        wanted = current_config()
    except Exception:
        return False, "could not render the configuration from the database"
    if running != wanted:
        return False, "Caddy's configuration differs from the database (a sync is due)"
    return True, ""
