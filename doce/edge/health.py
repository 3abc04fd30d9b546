"""The `edge` check of `/healthz` (registered by `doce.apps`)."""

from __future__ import annotations

from django.conf import settings

from doce.edge.sync import in_sync


def check_edge() -> tuple[bool, dict]:
    """Caddy's admin API answers and its configuration matches the database. Outside
    `manage.py serve` (no edge managed: tests, a bare daphne) it reports `unmanaged`, ok."""
    if not settings.DOCE_EDGE_MANAGED:
        return True, {"ok": True, "state": "unmanaged"}
    ok, why = in_sync()
    details: dict = {"ok": ok, "state": "in_sync" if ok else "out_of_sync"}
    if not ok:
        details["error"] = why
    return ok, details
