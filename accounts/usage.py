"""Model usage and monthly token budgets (the rows are written by the model gateway).

A user's budget is `Preferences.monthly_token_budget` when set, else
`DOCE_GATEWAY_MONTHLY_TOKENS`; 0 means no limit. A month is a calendar month in UTC. The
gateway refuses a request when the tokens already recorded this month reach the budget; a
request that is running when the budget is crossed completes (its tokens are only known at
its end), and nothing further is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Count, F, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from accounts.models import Preferences, UsageRecord


def month_start(now: datetime | None = None) -> datetime:
    """Midnight UTC on the first day of `now`'s month (UTC)."""
    now = (now or timezone.now()).astimezone(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def monthly_budget(user) -> int:
    """The user's monthly token budget (0: no limit)."""
    own = (
        Preferences.objects.filter(user=user).values_list("monthly_token_budget", flat=True).first()
    )
    return settings.DOCE_GATEWAY_MONTHLY_TOKENS if own is None else int(own)


def tokens_this_month(user, now: datetime | None = None) -> int:
    """Input plus output tokens recorded for `user` since the start of the month."""
    total = UsageRecord.objects.filter(user=user, created_at__gte=month_start(now)).aggregate(
        total=Sum(Coalesce(F("input_tokens"), Value(0)) + Coalesce(F("output_tokens"), Value(0)))
    )["total"]
    return int(total or 0)


@dataclass(frozen=True)
class BudgetState:
    """`budget` (0: none), `used` this month, and what is `left` (None: unlimited)."""

    budget: int
    used: int

    @property
    def left(self) -> int | None:
        return None if self.budget == 0 else max(0, self.budget - self.used)

    @property
    def exhausted(self) -> bool:
        return self.budget > 0 and self.used >= self.budget


def budget_state(user, now: datetime | None = None) -> BudgetState:
    """The user's budget and use this month (one or two queries)."""
    budget = monthly_budget(user)
    used = tokens_this_month(user, now) if budget else 0
    return BudgetState(budget=budget, used=used)


def usage_by_day_and_model(user, days: int = 30) -> list[dict]:
    """The user's usage of the last `days` days, newest first: `day`, `provider_id`, `model`,
    `requests`, `input_tokens`, `output_tokens` (None when no request reported any)."""
    since = timezone.now() - timedelta(days=days)
    rows = (
        UsageRecord.objects.filter(user=user, created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day", "provider_id", "model")
        .annotate(
            requests=Count("id"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
        )
        .order_by("-day", "provider_id", "model")
    )
    return [dict(row) for row in rows]
