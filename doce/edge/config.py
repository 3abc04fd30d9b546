"""Render Caddy's whole JSON configuration from plain values (pure: no I/O, no settings).

`render_config(site, routes)` is the one place the edge's routing is decided:

- doce's own host (`EdgeSite.doce_domain`) → daphne (`EdgeSite.upstreams`: one web process,
  or several load-balanced round robin; a request whose upstream refuses the connection is
  tried on the next one, WebSockets included), with body limits per path (`EdgeLimits`):
  uploads get the assets limit plus headroom, everything else is small. `/.doce/*` on doce's
  host is 404: those paths exist only on preview hosts.
- the model gateway (`EdgeGateway`, only when several web processes run): a second server on
  the gateway's addresses, proxying to every web process's own gateway listener, so agents
  keep one address whichever web process answers.
- each preview (`PreviewRoute`) at `p-<project id>.<preview domain>`:
  `/.doce/enter` goes to daphne (the token handshake sets the preview cookie), and so does
  `/.doce/bridge.js` (the preview bridge, public); every other
  request is checked first through `forward_auth` (`/.doce/auth` on daphne, told the project
  by a header Caddy sets, so a client cannot choose it) and then proxied to the container's
  loopback port. Anything the check refuses gets its answer (404) and never reaches the
  container.
- each site (`SiteRoute`, added by the deploy issue) at its own host → its port, public.
- any other host → 404.

TLS (`EdgeTls.mode`): `off` (plain HTTP, the default), `acme` (Caddy obtains and renews a
certificate for doce's host; preview hosts get theirs on demand, allowed by doce's `ask`
endpoint), `internal` (Caddy's own CA, for tests and LANs), or `files` (an operator's
wildcard certificate and key, loaded from files).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TlsMode = Literal["off", "acme", "internal", "files"]

# Paths on a preview host that belong to doce, not to the site.
ENTER_PATH = "/.doce/enter"
# The preview bridge script (the site template loads it in the dev server): reports the page
# shown and its runtime errors to the workspace. Public: it holds nothing but doce's origin.
BRIDGE_PATH = "/.doce/bridge.js"
AUTH_PATH = "/.doce/auth"
ASK_PATH = "/.doce/ask"
# The header Caddy sets (overwriting any a client sent) to tell daphne which preview a
# `/.doce/*` request is for.
PROJECT_HEADER = "X-Doce-Preview-Project"
SERVER_NAME = "doce"
GATEWAY_SERVER_NAME = "gateway"


@dataclass(frozen=True)
class EdgeLimits:
    """Request limits the edge enforces before daphne or a container reads anything.

    Bytes: `body_bytes` for doce's requests, `upload_bytes` for `upload_paths` (Caddy path
    patterns), `prompt_bytes` for `prompt_paths` (prompts with attachments),
    `preview_body_bytes` for requests to previews and sites, `header_bytes` for
    a request's headers. Seconds: `read_header_seconds` to receive the headers,
    `read_body_seconds` to receive the body (0: no limit), `idle_seconds` a keep-alive
    connection may sit idle, `grace_seconds` old connections get to finish after a reload.
    """

    body_bytes: int = 1024 * 1024
    upload_bytes: int = 11 * 1024 * 1024
    upload_paths: tuple[str, ...] = ()
    prompt_bytes: int = 36 * 1024 * 1024
    prompt_paths: tuple[str, ...] = ()
    preview_body_bytes: int = 10 * 1024 * 1024
    header_bytes: int = 64 * 1024
    read_header_seconds: float = 10.0
    read_body_seconds: float = 120.0
    idle_seconds: float = 120.0
    grace_seconds: float = 10.0


@dataclass(frozen=True)
class EdgeTls:
    """How the edge gets certificates (see the module docstring). `email`: the ACME
    account's contact (optional). `cert_file`/`key_file`: PEM files for mode `files`.
    `ask_url`: doce's on-demand TLS permission endpoint (mode `acme`)."""

    mode: TlsMode = "off"
    email: str = ""
    cert_file: str = ""
    key_file: str = ""
    ask_url: str = ""


@dataclass(frozen=True)
class EdgeSite:
    """Where the edge listens and what it fronts.

    `listen_host`/`listen_port`: the address users connect to (`DOCE_HOST:DOCE_PORT`).
    `doce_domain`: doce's own host name; `preview_domain`: previews are
    `p-<id>.<preview_domain>`. `upstreams`: the web processes' `host:port` addresses (at
    least one; daphne's loopback port in the embedded default). `admin_socket`: the unix
    socket path of Caddy's admin API. `storage_dir`: where Caddy keeps certificates and its
    internal CA. `gateway`: the model gateway's front (None: the web process listens itself).
    """

    listen_host: str
    listen_port: int
    doce_domain: str
    preview_domain: str
    upstreams: tuple[str, ...]
    admin_socket: str
    storage_dir: str = ""
    tls: EdgeTls = field(default_factory=EdgeTls)
    limits: EdgeLimits = field(default_factory=EdgeLimits)
    gateway: EdgeGateway | None = None


@dataclass(frozen=True)
class EdgeGateway:
    """The model gateway's front when several web processes run: the edge listens on
    `listen` (`host:port` addresses: the Docker bridge's gateway address and loopback, never
    the public listener) and proxies to `upstreams`, each web process's own gateway listener
    (`host:port`)."""

    listen: tuple[str, ...]
    upstreams: tuple[str, ...]


@dataclass(frozen=True)
class PreviewRoute:
    """A running preview: project `project_id`'s dev server on `127.0.0.1:<port>`."""

    project_id: str
    port: int


@dataclass(frozen=True)
class SiteRoute:
    """A published site, public (no check): requests for `host` are served from the folder
    `root` (`file_server`, a static release) when it is set, else proxied to
    `127.0.0.1:<port>` (a server release's container).

    `fallback_roots` (static only): older folders of the same site, tried in order for a
    request under one of `fallback_paths` (Caddy path patterns, e.g. `/_astro/*`) that `root`
    has no file for. A page loaded just before a switch then still gets its own hashed
    assets after it (a content-hashed name means the same bytes in whichever folder has it);
    every other path is served from `root` only."""

    host: str
    port: int = 0
    root: str = ""
    fallback_roots: tuple[str, ...] = ()
    fallback_paths: tuple[str, ...] = ()


# Headers every site response carries.
SITE_HEADERS: dict[str, list[str]] = {
    "X-Content-Type-Options": ["nosniff"],
    "Referrer-Policy": ["strict-origin-when-cross-origin"],
}


def preview_host(project_id: str, preview_domain: str) -> str:
    """The host name of a project's preview: `p-<id>.<preview domain>` (lowercase)."""
    return f"p-{project_id}.{preview_domain}".lower()


def _dial(port: int) -> list[dict]:
    return [{"dial": f"127.0.0.1:{port}"}]


def _not_found() -> dict:
    return {
        "handler": "static_response",
        "status_code": 404,
        "body": "Not found.\n",
        "headers": {"Content-Type": ["text/plain; charset=utf-8"]},
        "close": False,
    }


def _body_limit(max_bytes: int) -> dict:
    return {"handler": "request_body", "max_size": max_bytes}


# Every configuration change reloads Caddy's servers, which closes open WebSockets after
# this delay: a preview's HMR socket or doce's live sockets survive other users' previews
# starting and stopping (they reconnect by themselves when the delay is over).
STREAM_CLOSE_DELAY = "2h"


# With several web processes: how long a request whose upstream refuses the connection keeps
# being tried on the others (a web process restarting after a crash), and how long an
# upstream that failed is left out.
LB_TRY_SECONDS = 10
LB_TRY_INTERVAL = "250ms"
LB_FAIL_SECONDS = 5


def _webs(addresses: tuple[str, ...]) -> list[dict]:
    return [{"dial": address} for address in addresses]


def _proxy(upstreams: list[dict], *, project_id: str | None = None) -> dict:
    handler: dict = {
        "handler": "reverse_proxy",
        "upstreams": upstreams,
        "stream_close_delay": STREAM_CLOSE_DELAY,
    }
    if len(upstreams) > 1:
        handler.update(_load_balancing())
    if project_id is not None:
        handler["headers"] = {"request": {"set": {PROJECT_HEADER: [project_id]}}}
    return handler


def _load_balancing() -> dict:
    # Round robin, no sticky sessions: doce keeps no state in a web process that a client
    # depends on (sessions in the DB, events resume by id). Caddy retries a request only
    # when its upstream refused the connection, so nothing is ever sent twice.
    return {
        "load_balancing": {
            "selection_policy": {"policy": "round_robin"},
            "try_duration": f"{LB_TRY_SECONDS}s",
            "try_interval": LB_TRY_INTERVAL,
        },
        "health_checks": {"passive": {"fail_duration": f"{LB_FAIL_SECONDS}s", "max_fails": 1}},
    }


def _doce_route(site: EdgeSite) -> dict:
    daphne = _webs(site.upstreams)
    limits = site.limits
    routes: list[dict] = [
        {"match": [{"path": ["/.doce/*"]}], "handle": [_not_found()], "terminal": True},
    ]
    for paths, max_bytes in (
        (limits.upload_paths, limits.upload_bytes),
        (limits.prompt_paths, limits.prompt_bytes),
    ):
        if paths:
            routes.append(
                {
                    "match": [{"path": list(paths)}],
                    "handle": [_body_limit(max_bytes), _proxy(daphne)],
                    "terminal": True,
                }
            )
    routes.append({"handle": [_body_limit(limits.body_bytes), _proxy(daphne)]})
    return {
        "match": [{"host": [site.doce_domain]}],
        "handle": [{"handler": "subroute", "routes": routes}],
        "terminal": True,
    }


def _forward_auth(site: EdgeSite, project_id: str) -> dict:
    # What Caddyfile's `forward_auth` expands to: ask daphne with the original method and
    # URI in headers; a 2xx lets the request go on, anything else is the client's answer.
    check: dict = {
        "handler": "reverse_proxy",
        "upstreams": _webs(site.upstreams),
        "rewrite": {"method": "GET", "uri": AUTH_PATH},
        "headers": {
            "request": {
                "set": {
                    PROJECT_HEADER: [project_id],
                    "X-Forwarded-Method": ["{http.request.method}"],
                    "X-Forwarded-Uri": ["{http.request.uri}"],
                },
                # The check is a plain GET of headers: no body and no WebSocket upgrade
                # (an HMR socket is checked like any request, then proxied).
                "delete": [
                    "Content-Length",
                    "Transfer-Encoding",
                    "Content-Type",
                    "Connection",
                    "Upgrade",
                    "Sec-WebSocket-Key",
                    "Sec-WebSocket-Version",
                    "Sec-WebSocket-Extensions",
                    "Sec-WebSocket-Protocol",
                ],
            }
        },
        "handle_response": [
            {"match": {"status_code": [2]}, "routes": [{"handle": [{"handler": "vars"}]}]}
        ],
    }
    if len(site.upstreams) > 1:
        check.update(_load_balancing())
    return check


def _preview_route(site: EdgeSite, preview: PreviewRoute) -> dict:
    daphne = _webs(site.upstreams)
    routes = [
        {
            "match": [{"path": [ENTER_PATH, BRIDGE_PATH]}],
            "handle": [_body_limit(1024), _proxy(daphne, project_id=preview.project_id)],
            "terminal": True,
        },
        {
            "match": [{"path": ["/.doce/*"]}],
            "handle": [_not_found()],
            "terminal": True,
        },
        {
            "handle": [
                _body_limit(site.limits.preview_body_bytes),
                _forward_auth(site, preview.project_id),
                _proxy(_dial(preview.port)),
            ]
        },
    ]
    return {
        "match": [{"host": [preview_host(preview.project_id, site.preview_domain)]}],
        "handle": [{"handler": "subroute", "routes": routes}],
        "terminal": True,
    }


def _static_site(site: SiteRoute) -> dict:
    """`file_server` on the site's root; with fallbacks, a subroute that serves a
    `fallback_paths` request from the first of `root`, then `fallback_roots`, that has the
    file, and anything else (and a miss everywhere) from `root`."""
    serve: dict = {"handler": "file_server", "root": site.root}
    if not (site.fallback_roots and site.fallback_paths):
        return serve
    routes = [
        {
            "match": [
                {
                    "path": list(site.fallback_paths),
                    "file": {"root": root, "try_files": ["{http.request.uri.path}"]},
                }
            ],
            "handle": [{"handler": "file_server", "root": root}],
            "terminal": True,
        }
        for root in (site.root, *site.fallback_roots)
    ]
    routes.append({"handle": [serve]})
    return {"handler": "subroute", "routes": routes}


def _site_route(site: SiteRoute, limits: EdgeLimits) -> dict:
    headers = {"handler": "headers", "response": {"set": SITE_HEADERS}}
    serve = _static_site(site) if site.root else _proxy(_dial(site.port))
    return {
        "match": [{"host": [site.host.lower()]}],
        "handle": [_body_limit(limits.preview_body_bytes), headers, serve],
        "terminal": True,
    }


def _duration(seconds: float) -> str:
    return f"{int(seconds * 1000)}ms"


def _tls_app(site: EdgeSite, preview_hosts: list[str]) -> dict | None:
    tls = site.tls
    if tls.mode == "off":
        return None
    if tls.mode == "internal":
        issuers: list[dict] = [{"module": "internal"}]
    else:
        acme: dict = {"module": "acme"}
        if tls.email:
            acme["email"] = tls.email
        issuers = [acme]
    policies: list[dict] = []
    if tls.mode == "files":
        # The operator's certificate covers doce's host and the preview wildcard; nothing
        # is obtained.
        return {
            "certificates": {"load_files": [{"certificate": tls.cert_file, "key": tls.key_file}]},
            "automation": {"policies": [{"subjects": [site.doce_domain], "issuers": issuers}]},
        }
    policies.append({"subjects": [site.doce_domain], "issuers": issuers})
    app: dict = {"automation": {"policies": policies}}
    if preview_hosts and tls.mode == "acme":
        # Preview hosts get certificates on demand, when a browser first asks, and only
        # when doce's `ask` endpoint says the host belongs to an existing project.
        policies.append({"subjects": preview_hosts, "issuers": issuers, "on_demand": True})
        app["automation"]["on_demand"] = {"permission": {"module": "http", "endpoint": tls.ask_url}}
    elif preview_hosts:
        # The internal CA issues at once, locally: no need to wait for a first request.
        policies.append({"subjects": preview_hosts, "issuers": issuers})
    return app


def render_config(
    site: EdgeSite,
    previews: list[PreviewRoute] | tuple[PreviewRoute, ...] = (),
    sites: list[SiteRoute] | tuple[SiteRoute, ...] = (),
) -> dict:
    """The whole Caddy configuration (a JSON-able dict) for `site` with these routes.

    Routes are sorted (by project id, by host), so the same state renders the same
    document: Caddy skips reloading an identical config. Raises `ValueError` for a preview
    or site port outside 1..65535, a site host that collides with doce's or a preview's, or
    a site without web upstreams.
    """
    if not site.upstreams:
        raise ValueError("the edge needs at least one web upstream")
    previews = sorted(previews, key=lambda p: p.project_id)
    sites = sorted(sites, key=lambda s: s.host)
    taken = {site.doce_domain.lower()}
    for port in [p.port for p in previews] + [s.port for s in sites if not s.root]:
        if not 0 < port < 65536:
            raise ValueError(f"port out of range: {port}")
    preview_hosts = [preview_host(p.project_id, site.preview_domain) for p in previews]
    taken.update(preview_hosts)
    for s in sites:
        if s.host.lower() in taken:
            raise ValueError(f"site host {s.host!r} collides with another route")
        taken.add(s.host.lower())

    limits = site.limits
    routes = [
        _doce_route(site),
        *(_preview_route(site, p) for p in previews),
        *(_site_route(s, limits) for s in sites),
        {"handle": [_not_found()]},  # any other host
    ]
    server: dict = {
        "listen": [f"{_listen_host(site.listen_host)}:{site.listen_port}"],
        "routes": routes,
        "max_header_bytes": limits.header_bytes,
        "read_header_timeout": _duration(limits.read_header_seconds),
        "idle_timeout": _duration(limits.idle_seconds),
    }
    if limits.read_body_seconds:
        server["read_timeout"] = _duration(limits.read_body_seconds)
    http_app: dict = {
        "grace_period": _duration(limits.grace_seconds),
        "servers": {SERVER_NAME: server},
    }
    if site.gateway is not None:
        http_app["servers"][GATEWAY_SERVER_NAME] = _gateway_server(site.gateway)
    if site.tls.mode == "off":
        server["automatic_https"] = {"disable": True}
    else:
        http_app["https_port"] = site.listen_port
        # The redirect listener is on port 80; only a deployment on 443 wants it.
        server["automatic_https"] = {"disable_redirects": site.listen_port != 443}
        if site.tls.mode == "files":
            server["tls_connection_policies"] = [{}]
    config: dict = {
        "admin": {"listen": f"unix/{site.admin_socket}", "config": {"persist": False}},
        "logging": {"logs": {"default": {"level": "WARN"}}},
        "apps": {"http": http_app},
    }
    if site.storage_dir:
        config["storage"] = {"module": "file_system", "root": site.storage_dir}
    if site.tls.mode == "internal":
        # Never let Caddy add its root to the machine's trust store (it would, as root):
        # operators and tests trust it explicitly.
        config["apps"]["pki"] = {"certificate_authorities": {"local": {"install_trust": False}}}
    tls_app = _tls_app(site, preview_hosts)
    if tls_app is not None:
        config["apps"]["tls"] = tls_app
    return config


def _gateway_server(gateway: EdgeGateway) -> dict:
    # Plain HTTP on the bridge and loopback: agents' model calls stream (SSE) for minutes, so
    # no read timeout and every chunk is passed on at once.
    proxy = _proxy(_webs(gateway.upstreams))
    proxy["flush_interval"] = -1
    return {
        "listen": list(gateway.listen),
        "routes": [{"handle": [proxy]}],
        "automatic_https": {"disable": True},
    }


def _listen_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 (every interface, on the operator's word)
        return ""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
