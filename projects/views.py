"""Project pages."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from doce.docker.engine import engine_status
from projects.models import Project


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """The signed-in user's projects, newest edit first."""
    projects = Project.objects.for_user(request.user).order_by("-updated_at")
    return render(
        request,
        "projects/dashboard.html",
        {"projects": projects, "engine": engine_status()},
    )
