"""Template tags for pages of other apps that show production state without importing
`productions` (templates load the library by name).

    {% load productions %}
    {% site_badges projects as badges %}          one query for the whole list
    {% with badge=badges|badge_for:project.id %}…{% endwith %}
"""

from __future__ import annotations

from django import template

from productions.models import Production
from productions.routes import site_url

register = template.Library()


@register.simple_tag
def site_badges(projects) -> dict[str, dict]:
    """{project id: {"status", "label", "url"}} for the projects that ever deployed (one
    query); `url` only while a release is live."""
    ids = [project.pk for project in projects]
    rows = Production.objects.filter(project_id__in=ids).exclude(status=Production.Status.NONE)
    return {
        row.project_id: {
            "status": row.status,
            "label": row.get_status_display(),
            "url": site_url(row.project_id) if row.live_release_id else "",
        }
        for row in rows
    }


@register.filter
def badge_for(badges: dict, project_id: str):
    """The badge of `project_id` in `badges` (None when it never deployed)."""
    return badges.get(project_id)
