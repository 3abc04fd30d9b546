"""What the edge serves for live sites: plain data read from the database, handed to the
edge (`doce.edge`, which renders and loads it).

`site_routes()`: one `SiteRoute` per project whose production has a live release
(`s-<id>.<DOCE_SITES_DOMAIN>` and its custom domains); `edge_routes()`: the same as the
edge's routes, one per host (static release: `file_server` on its folder; server release:
`reverse_proxy` to its container's loopback port; both with the site headers of
`doce.edge.config.SITE_HEADERS`). doce's cookies never reach a site: they are host-only
cookies of doce's own host, and the site hosts are other hosts.

Zero-downtime static switches: a static site's route serves `releases/current`, the
symlink `production.promote` moves by atomic rename, so switching between static releases
(deploy or rollback) renders the same edge configuration and Caddy reloads nothing (a
reload closes idle keep-alive connections, and a request sent on one at that moment fails).

Never a mix of releases across a switch: a static site's hashed build assets (`ASSET_PATHS`,
Astro's `_astro/` folder, whose file names carry a hash of their contents) that the live
release does not have are served from the project's asset pool (`releases/_assets`: links to
the assets of every retained release). A page loaded from release N just before the switch
to N+1 so still gets N's scripts and styles after it; pages and every other path come from
the live release only.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from doce.edge.config import SiteRoute as EdgeSiteRoute
from productions.models import Domain, Production, Release, asset_pool_dir, current_dir
from productions.releases import ASSET_FOLDER

# Where Astro puts its content-hashed build assets (`build.assets`, default `_astro`).
ASSET_PATHS = (f"/{ASSET_FOLDER}/*",)


def site_host(project_id: str) -> str:
    """`s-<project id>.<DOCE_SITES_DOMAIN>`: the host a project's live site is served at."""
    return f"s-{project_id}.{settings.DOCE_SITES_DOMAIN}"


def site_url(project_id: str) -> str:
    """The production URL: the site host with doce's public scheme and port, e.g.
    `http://s-<id>.localhost:8000/`."""
    origin = urlsplit(settings.DOCE_ORIGIN)
    port = f":{origin.port}" if origin.port else ""
    return f"{origin.scheme}://{site_host(project_id)}{port}/"


@dataclass(frozen=True)
class SiteRoute:
    """One live site: `hosts` (the site host, then custom domains), the release's `kind`,
    `root` (a static release: the project's `releases/current`) or `upstream`
    (`127.0.0.1:<port>` of a server release's container), and `release_id`.
    `fallback_roots`: the asset pool, for hashed assets the live release lacks."""

    project_id: str
    hosts: tuple[str, ...]
    kind: str
    release_id: str
    root: str = ""
    upstream: str = ""
    fallback_roots: tuple[str, ...] = ()

    @property
    def port(self) -> int:
        """The upstream's port (0 for a static release)."""
        return int(self.upstream.rsplit(":", 1)[1]) if self.upstream else 0


def route_for(production: Production, domains: list[str]) -> SiteRoute | None:
    """The route of one production, or None when nothing is to be served (no live release,
    stopped, or a server release without a port)."""
    release = production.live_release
    if release is None or production.status == Production.Status.STOPPED:
        return None
    hosts = (site_host(production.project_id), *sorted(domains))
    if release.kind == Release.Kind.SERVER:
        if not release.port:
            return None
        return SiteRoute(
            production.project_id,
            hosts,
            release.kind,
            release.release_id,
            upstream=f"127.0.0.1:{release.port}",
        )
    project = release.project
    return SiteRoute(
        production.project_id,
        hosts,
        release.kind,
        release.release_id,
        root=str(current_dir(project)),
        fallback_roots=(str(asset_pool_dir(project)),),
    )


def site_routes() -> list[SiteRoute]:
    """The routes of every live site of this installation, ordered by project id."""
    productions = list(
        Production.objects.filter(live_release__isnull=False)
        .exclude(status=Production.Status.STOPPED)
        .select_related("live_release", "live_release__project")
        .order_by("project_id")
    )
    domains: dict[str, list[str]] = {}
    for project_id, name in Domain.objects.values_list("project_id", "name"):
        domains.setdefault(project_id, []).append(name)
    routes = []
    for production in productions:
        route = route_for(production, domains.get(production.project_id, []))
        if route is not None:
            routes.append(route)
    return routes


def edge_routes() -> list[EdgeSiteRoute]:
    """The live sites as the edge's routes (`doce.edge.config.SiteRoute`, one per host):
    registered with `doce.edge.routes.register_routes`, rendered by the edge (static:
    `file_server` on `releases/current`; server: `reverse_proxy` to the container's port)."""
    return [
        EdgeSiteRoute(
            host=host,
            port=route.port,
            root=route.root,
            fallback_roots=route.fallback_roots,
            fallback_paths=ASSET_PATHS if route.fallback_roots else (),
        )
        for route in site_routes()
        for host in route.hosts
    ]


def serves_host(host: str) -> bool:
    """True when `host` is a live site's host or an attached custom domain (for the edge's
    on-demand TLS `ask`: certificates only for those)."""
    host = host.lower().rstrip(".")
    if Domain.objects.filter(name=host).exists():
        return True
    suffix = "." + settings.DOCE_SITES_DOMAIN.lower()
    if not host.startswith("s-") or not host.endswith(suffix):
        return False
    project_id = host[2 : -len(suffix)]
    return (
        Production.objects.filter(project_id=project_id, live_release__isnull=False)
        .exclude(status=Production.Status.STOPPED)
        .exists()
    )
