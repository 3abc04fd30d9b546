"""`GET /healthz`: database, Docker Engine and worker liveness as JSON.

200 when every check passes, 503 otherwise. Anonymous callers get `{"status": ...}` only;
staff (signed in) and callers sending `DOCE_HEALTHZ_TOKEN` in the `X-Doce-Health-Token`
header also get each check's details. The `docker` check reads the Engine health a worker
recorded (`doce.engine_health`): a health probe never waits on the Engine itself. No
secrets, hosts or paths are included.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.db.utils import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from doce.engine_health import recorded_engine

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
    """The Engine as a worker last recorded it: `state` reachable, unreachable or unknown
    (no fresh record: no worker checks), `checked_age_s` the record's age in seconds."""
    engine = recorded_engine()
    details = {"ok": engine.reachable, "state": engine.state, "checked_age_s": engine.age_s}
    if engine.reachable:
        details["version"] = engine.version
    else:
        details["error"] = engine.error
    return engine.reachable, details


def may_see_details(request: HttpRequest) -> bool:
    """Staff, or a caller presenting `DOCE_HEALTHZ_TOKEN` (compared in constant time).

    With the database down, sessions cannot be read: only the token shows details then.
    """
    try:
        if getattr(request.user, "is_staff", False):
            return True
    except DatabaseError:
        pass
    token = settings.DOCE_HEALTHZ_TOKEN
    offered = request.headers.get("X-Doce-Health-Token", "")
    return bool(token) and hmac.compare_digest(offered.encode(), token.encode())


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
    body: dict = {"status": "ok" if healthy else "unhealthy"}
    if may_see_details(request):
        body["checks"] = results
    return JsonResponse(body, status=200 if healthy else 503)
