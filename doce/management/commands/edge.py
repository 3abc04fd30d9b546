"""`manage.py edge status|sync`: the edge (Caddy) for operators.

- `edge status`: whether Caddy's admin API answers and its configuration matches the
  database; exit code 1 when not.
- `edge sync`: render the configuration from the database and load it now.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from doce.edge import sync as edge_sync
from doce.edge.admin import EdgeRejected, EdgeUnavailable
from doce.edge.routes import collect_routes


class Command(BaseCommand):
    help = "Show the edge's state (`edge status`) or load its configuration (`edge sync`)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["status", "sync"])

    def handle(self, *args, action: str, **options) -> None:
        if action == "sync":
            try:
                result = edge_sync.sync()
            except (EdgeUnavailable, EdgeRejected) as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(
                f"Loaded {result.previews} preview route(s) and {result.sites} site route(s)."
            )
            return
        previews, sites = collect_routes()
        ok, why = edge_sync.in_sync()
        self.stdout.write(f"admin socket: {edge_sync.admin_socket()}")
        self.stdout.write(
            f"routes in the database: {len(previews)} preview(s), {len(sites)} site(s)"
        )
        if ok:
            self.stdout.write(self.style.SUCCESS("The edge is running and in sync."))
            return
        raise CommandError(why)
