"""`GET /healthz`: database, Docker Engine and worker liveness as JSON.

200 when every check passes, 503 otherwise. No secrets, hosts or paths are included.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import connection
from django.db.utils import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from doce.docker.engine import engine_status

# Extra checks registered by apps (e.g. the queue's worker heartbeat): name -> callable
# returning (ok, details). Kept as a registry so `doce` does not import app internals.
_EXTRA_CHECKS: dict[str, Callable[[], tuple[bool, dict]]] = {}


def register_check(name: str, check: Callable[[], tuple[bool, dict]]) -> None:
    """Add a named check to `/healthz`. `check()` returns (ok, JSON-able details)."""
    _EXTRA_CHECKS[name] = check


def check_database() -> tuple[bool, dict]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return False, {"ok": False, "error": "database unreachable"}
    return True, {"ok": True, "vendor": connection.vendor}


def check_docker() -> tuple[bool, dict]:
    status = engine_status()
    if status.reachable:
        return True, {"ok": True, "version": status.version}
    return False, {"ok": False, "error": status.error}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": check_database, "docker": check_docker, **_EXTRA_CHECKS}
    results: dict[str, dict] = {}
    healthy = True
    for name, check in checks.items():
        ok, details = check()
        results[name] = details
        healthy = healthy and ok
    return JsonResponse(
        {"status": "ok" if healthy else "unhealthy", "checks": results},
        status=200 if healthy else 503,
    )
