"""Access decorators for account-level pages."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse


def is_administrator(user) -> bool:
    """True for an active staff user (doce's administrators)."""
    return user.is_active and user.is_staff


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Restrict `view` to administrators.

    Anonymous visitors are sent to sign in (`login_required`); a signed-in user who is not an
    administrator gets 403 (`templates/403.html`). Django's `user_passes_test` would send
    them to sign in again, which signs them straight back to the page: a redirect loop.
    """

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not is_administrator(request.user):
            raise PermissionDenied("This page is for administrators.")
        return view(request, *args, **kwargs)

    return wrapper
