"""The production part of doce's JSON API: deployments, releases, the production, domains.

Routes are added to the one API object (`projects.api.api`, mounted at `/api/`), with its
authentication, error shapes and OpenAPI schema. Another user's project, release or domain
is a 404, exactly like a missing one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from django.http import HttpRequest
from ninja import Field, Schema, Status

from doce.text import Line
from productions import services
from productions.models import Domain, Production, Release, get_release_for_project
from projects.api import ID, answers, api
from projects.models import get_project_for_user

TAGS = ["productions"]


class ProductionOut(Schema):
    status: Literal["none", "queued", "building", "starting", "live", "failed", "stopped"]
    label: str
    error: str = Field(description="What failed (with the build log's tail), or a note.")
    live_release: str | None = Field(description="The id of the release being served.")
    url: str | None = Field(description="The production URL while a release is live.")


class ReleaseOut(Schema):
    id: str = Field(description="The SHA-256 of the build output.")
    short_id: str
    kind: Literal["static", "server"]
    state: Literal["ready", "pruned"]
    commit: str = Field(description="The site's git commit it was built from.")
    diff_stat: str = Field(
        description="`git diff --shortstat` against the release live when it was built."
    )
    size_bytes: int
    deployed_by: str | None
    created_at: datetime
    live: bool


class DomainIn(Schema):
    name: Line = Field(min_length=1, max_length=253, description="e.g. www.example.org")


class DomainOut(Schema):
    name: str
    created_at: datetime


def _production(project) -> dict:
    production = Production.objects.select_related("live_release").filter(pk=project.pk).first()
    if production is None:
        production = Production(project=project)
    return services.status_payload(production)


@api.post(
    f"/projects/{ID}/deployments",
    response=answers({202: ProductionOut}, 403, 404, 409),
    tags=TAGS,
)
def deploy(request: HttpRequest, project_id: str):
    """Deploy the site's current state: build it, then switch to it once it serves (202;
    follow `GET /projects/{id}/production`). 409 while another deploy runs."""
    project = get_project_for_user(request.user, project_id)
    services.deploy(project, request.user)
    return Status(202, _production(project))


@api.get(f"/projects/{ID}/production", response=answers({200: ProductionOut}, 404), tags=TAGS)
def production(request: HttpRequest, project_id: str):
    """The production's state: status, what failed, the live release and its URL."""
    return _production(get_project_for_user(request.user, project_id))


@api.delete(
    f"/projects/{ID}/production", response=answers({202: ProductionOut}, 403, 404, 409), tags=TAGS
)
def stop_production(request: HttpRequest, project_id: str):
    """Stop serving the site (releases stay; activate one to serve it again). 202."""
    project = get_project_for_user(request.user, project_id)
    services.stop(project)
    return Status(202, _production(project))


@api.get(f"/projects/{ID}/releases", response=answers({200: list[ReleaseOut]}, 404), tags=TAGS)
def releases(request: HttpRequest, project_id: str):
    """The project's releases, newest first (pruned ones are listed, but cannot be activated)."""
    project = get_project_for_user(request.user, project_id)
    live_id = (
        Production.objects.filter(pk=project.pk).values_list("live_release", flat=True).first()
    )
    rows = list(Release.objects.filter(project=project).select_related("deployed_by"))
    out = []
    for release in rows:
        out.append(
            {
                "id": release.release_id,
                "short_id": release.short_id,
                "kind": release.kind,
                "state": release.state,
                "commit": release.commit,
                "diff_stat": release.diff_stat,
                "size_bytes": release.size_bytes,
                "deployed_by": release.deployed_by.get_username() if release.deployed_by else None,
                "created_at": release.created_at,
                "live": release.pk == live_id,
            }
        )
    return out


@api.post(
    f"/projects/{ID}/releases/{{release_id}}/activate",
    response=answers({202: ProductionOut}, 403, 404, 409),
    tags=TAGS,
)
def activate(request: HttpRequest, project_id: str, release_id: str):
    """Make a retained release live again (rollback or roll forward), through the same steps
    as a deploy (202). `release_id`: the full id or its 12-character short form."""
    project = get_project_for_user(request.user, project_id)
    release = get_release_for_project(project, release_id)
    services.activate(project, release)
    return Status(202, _production(project))


@api.get(f"/projects/{ID}/domains", response=answers({200: list[DomainOut]}, 404), tags=TAGS)
def domains(request: HttpRequest, project_id: str):
    """The custom domains attached to the project's site."""
    project = get_project_for_user(request.user, project_id)
    return list(Domain.objects.filter(project=project))


@api.post(
    f"/projects/{ID}/domains",
    response=answers({201: DomainOut}, 400, 403, 404, 409, 422),
    tags=TAGS,
)
def attach_domain(request: HttpRequest, project_id: str, payload: DomainIn):
    """Attach a custom domain (unique across the installation; 409 when taken). Point its
    DNS at this server; with HTTPS on, its certificate is obtained on first visit."""
    project = get_project_for_user(request.user, project_id)
    return Status(201, services.attach_domain(project, payload.name))


@api.delete(f"/projects/{ID}/domains/{{name}}", response=answers({204: None}, 403, 404), tags=TAGS)
def detach_domain(request: HttpRequest, project_id: str, name: str):
    """Detach a custom domain: it stops being served at once (204)."""
    project = get_project_for_user(request.user, project_id)
    services.detach_domain(project, name)
    return Status(204, None)
