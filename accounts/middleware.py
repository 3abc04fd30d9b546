"""First-run setup: while no user exists, every page redirects to `/setup`."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

# Paths that work before setup: the setup page itself, health checks, static files.
_EXEMPT_PREFIXES = ("/setup", "/healthz", "/static/")


class FirstRunSetupMiddleware:
    """Redirect every request to `/setup` until the first user exists.

    Once a user has been seen, the answer is kept for the life of the process: users are
    never all deleted on a running instance, and this saves a query per request.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._has_users = False

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not self._has_users and not request.path.startswith(_EXEMPT_PREFIXES):
            self._has_users = get_user_model().objects.exists()
            if not self._has_users:
                return HttpResponseRedirect(reverse("setup"))
        return self.get_response(request)
