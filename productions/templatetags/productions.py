"""Template tags for pages of other apps that show production state without importing
`productions` (templates load the library by name).

    {% load productions %}
    {% with_site_badges cards as cards %}     one query for the whole list
    {% if card.site %}{{ card.site.label }}…{% endif %}
"""

from __future__ import annotations

from django import template

from productions.models import Production
from productions.routes import site_url

register = template.Library()


@register.simple_tag
def with_site_badges(cards: list[dict]) -> list[dict]:
    """`cards` (dicts with the project's `id`, e.g. `projects.presenters.dashboard_cards`)
    as new dicts with a `site` key: `{"status", "label", "url"}` for a project that ever
    deployed, else None; `url` only while a release is live. One query for the whole list;
    the cards themselves are left unchanged."""
    ids = [card["id"] for card in cards]
    rows = Production.objects.filter(project_id__in=ids).exclude(status=Production.Status.NONE)
    badges = {
        row.project_id: {
            "status": row.status,
            "label": row.get_status_display(),
            "url": site_url(row.project_id) if row.live_release_id else "",
        }
        for row in rows
    }
    return [{**card, "site": badges.get(card["id"])} for card in cards]
