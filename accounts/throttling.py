"""Sign-in throttling: django-axes' per-account limit plus a limit per client address.

Axes counts failed sign-ins per (username, address) and locks that pair out after
`AXES_FAILURE_LIMIT` (`DOCE_LOGIN_FAILURE_LIMIT`). On its own that lets one address try a
few passwords against every username it can think of. `LoginThrottle` adds a second count:
all failures from one address, whatever the username, within the same cool-off
(`AXES_COOLOFF_TIME`); at `DOCE_LOGIN_ADDRESS_FAILURE_LIMIT` the address is locked out for
every username until the cool-off has passed (or `manage.py axes_reset_ip <address>`).

The address is the one Django sees (`REMOTE_ADDR`): behind a reverse proxy, daphne must be
told to take it from the proxy's `X-Forwarded-For` (`daphne --proxy-headers`), or every user
shares the proxy's address.
"""

from __future__ import annotations

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest


class LoginThrottle(AxesDatabaseHandler):
    """Axes' database handler with the per-address limit (`AXES_HANDLER` names it)."""

    def is_locked(self, request: HttpRequest, credentials: dict | None = None) -> bool:
        """Locked by axes' own count, or because the address reached its limit."""
        return super().is_locked(request, credentials) or self.address_exhausted(request)

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs) -> None:
        """Record the failure (axes), then lock the address out if it reached its limit."""
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is None or getattr(request, "axes_locked_out", False):
            return
        if self.is_whitelisted(request, credentials) or not self.address_exhausted(request):
            return
        request.axes_locked_out = True
        request.axes_credentials = credentials
        user_locked_out.send(
            "axes",
            request=request,
            username=get_client_username(request, credentials),
            ip_address=request.axes_ip_address,
        )

    @staticmethod
    def address_failures(request: HttpRequest) -> int:
        """Failed sign-ins from the request's address, over all usernames, in the cool-off."""
        # Axes sets `axes_ip_address` on every request it handles, before any check.
        address = getattr(request, "axes_ip_address", None)
        if address is None:
            return 0
        attempts = AccessAttempt.objects.filter(ip_address=address)
        if settings.AXES_COOLOFF_TIME is not None:
            attempts = attempts.filter(attempt_time__gte=get_cool_off_threshold(request))
        return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0

    def address_exhausted(self, request: HttpRequest) -> bool:
        """True when the request's address has used up `DOCE_LOGIN_ADDRESS_FAILURE_LIMIT`."""
        return self.address_failures(request) >= settings.DOCE_LOGIN_ADDRESS_FAILURE_LIMIT
