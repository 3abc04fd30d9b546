"""The workspace's Deploy tab (`/projects/<id>/deploy/`, shown in a frame like Files and
Assets) and its form actions. Every action goes through `productions.services`; a refused
one (`ProjectActionError`) becomes a message on the page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_POST

from doce.events import last_event_id
from productions import services
from productions.models import Domain, Production, Release, get_release_for_project
from projects.models import get_project_for_user, project_topic
from projects.services import ProjectActionError


@xframe_options_sameorigin  # shown inside the workspace's Deploy tab
@login_required
@require_GET
def deploy_page(request: HttpRequest, project_id: str) -> HttpResponse:
    """Production state, build log, release history, domains."""
    project = get_project_for_user(request.user, project_id)
    after = last_event_id([project_topic(project.id)])  # before the state: see last_event_id
    production = Production.objects.select_related("live_release").filter(
        pk=project.pk
    ).first() or Production(project=project)
    releases = list(Release.objects.filter(project=project).select_related("deployed_by"))
    rows = [
        {
            "release": release,
            "live": release.pk == production.live_release_id
            and production.status != Production.Status.STOPPED,
        }
        for release in releases
    ]
    context = {
        "project": project,
        "production": production,
        "state": services.status_payload(production),
        "busy": production.status in Production.ACTIVE,
        "rows": rows,
        "domains": Domain.objects.filter(project=project),
        "embed": bool(request.GET.get("embed")),
        "last_event_id": after,
    }
    return render(request, "productions/deploy.html", context)


def _back(request: HttpRequest, project_id: str) -> HttpResponse:
    url = reverse("production-page", args=[project_id])
    return redirect(url + ("?embed=1" if request.POST.get("embed") else ""))


def _attempt(request: HttpRequest, action, *args, done: str = "") -> None:
    try:
        action(*args)
    except ProjectActionError as exc:
        messages.error(request, str(exc))
        return
    if done:
        messages.info(request, done)


@login_required
@require_POST
def deploy(request: HttpRequest, project_id: str) -> HttpResponse:
    project = get_project_for_user(request.user, project_id)
    _attempt(request, services.deploy, project, request.user, done="Deploy queued.")
    return _back(request, project.id)


@login_required
@require_POST
def stop(request: HttpRequest, project_id: str) -> HttpResponse:
    project = get_project_for_user(request.user, project_id)
    _attempt(request, services.stop, project, done="The site is being taken offline.")
    return _back(request, project.id)


@login_required
@require_POST
def activate(request: HttpRequest, project_id: str, release_id: str) -> HttpResponse:
    project = get_project_for_user(request.user, project_id)
    release = get_release_for_project(project, release_id)
    _attempt(request, services.activate, project, release, done=f"Activating {release.short_id}.")
    return _back(request, project.id)


@login_required
@require_POST
def attach_domain(request: HttpRequest, project_id: str) -> HttpResponse:
    project = get_project_for_user(request.user, project_id)
    name = request.POST.get("name", "")
    _attempt(request, services.attach_domain, project, name, done="Domain attached.")
    return _back(request, project.id)


@login_required
@require_POST
def detach_domain(request: HttpRequest, project_id: str) -> HttpResponse:
    project = get_project_for_user(request.user, project_id)
    name = request.POST.get("name", "")
    _attempt(request, services.detach_domain, project, name, done="Domain detached.")
    return _back(request, project.id)
