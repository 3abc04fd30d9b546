"""Where production switches meet the edge (Caddy, `doce.edge`).

Productions registers its live sites as edge routes (`productions.routes.edge_routes`, in
`ProductionsConfig.ready`) and, for on-demand TLS, which hosts it serves
(`productions.routes.serves_host`). After a switch, stop or domain change it asks for a
sync through the projects app's one path (`projects.edge.request_sync`: load now after
commit, else a deduplicated `edge.sync` job); without a running edge nothing is done, and
the worker's periodic sync converges later.
"""

from __future__ import annotations

from projects import edge as project_edge


def request_sync() -> None:
    """Bring the edge up to date once the current transaction commits (one config load).
    Never raises for an edge that is down."""
    project_edge.request_sync()
