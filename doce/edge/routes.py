"""Where apps add routes to the edge, so this adapter never imports them.

`projects` registers its running previews, `productions` its live sites (the deploy issue):
`register_routes(name, provider)` where `provider()` returns a list of `PreviewRoute` and
`SiteRoute`. `collect_routes()` calls every provider (a provider that raises propagates:
a half-rendered configuration must never be loaded).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from doce.edge.config import PreviewRoute, SiteRoute

Route = PreviewRoute | SiteRoute
_PROVIDERS: dict[str, Callable[[], Sequence[Route]]] = {}


def register_routes(name: str, provider: Callable[[], Sequence[Route]]) -> None:
    """Add (or replace) the route provider called `name`."""
    _PROVIDERS[name] = provider


def collect_routes() -> tuple[list[PreviewRoute], list[SiteRoute]]:
    """Every provider's routes, split into previews and sites."""
    previews: list[PreviewRoute] = []
    sites: list[SiteRoute] = []
    for provider in _PROVIDERS.values():
        for route in provider():
            if isinstance(route, PreviewRoute):
                previews.append(route)
            else:
                sites.append(route)
    return previews, sites
