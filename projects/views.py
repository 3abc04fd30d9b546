"""Project pages: dashboard, and a project's files, assets and export."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from doce.docker.engine import engine_status
from projects import files
from projects.models import Project, get_project_for_user


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """The signed-in user's projects, newest edit first."""
    projects = Project.objects.for_user(request.user).order_by("-updated_at")
    return render(
        request,
        "projects/dashboard.html",
        {"projects": projects, "engine": engine_status()},
    )


# /projects/<id>/files/


@login_required
@require_GET
def file_tree(request: HttpRequest, project_id: str) -> HttpResponse:
    """Read-only tree of the site's files, with the selected file (`?path=`) highlighted."""
    project = get_project_for_user(request.user, project_id)
    entries, truncated = files.list_tree(project)
    context = {"project": project, "entries": entries, "truncated": truncated}
    status = 200
    if path := request.GET.get("path"):
        try:
            context["file"] = files.view_file(project, path)
        except files.FileAccessError as exc:
            context["file_error"] = str(exc)
            status = 404
    return render(request, "projects/files.html", context, status=status)


# /projects/<id>/assets/


@login_required
@require_GET
def assets(request: HttpRequest, project_id: str) -> HttpResponse:
    """The files in the site's `public/` folder, with upload, rename and delete."""
    project = get_project_for_user(request.user, project_id)
    return _assets_page(request, project)


def _assets_page(request: HttpRequest, project: Project, status: int = 200) -> HttpResponse:
    context = {
        "project": project,
        "assets": files.list_assets(project),
        "allowed": sorted(ext.lstrip(".") for ext in files.ASSET_EXTENSIONS),
        "max_mb": files.MAX_ASSET_BYTES // (1024 * 1024),
    }
    return render(request, "projects/assets.html", context, status=status)


@csrf_exempt  # the upload handlers must be set before CSRF reads the body; checked below
@login_required
@require_POST
def upload_asset(request: HttpRequest, project_id: str) -> HttpResponse:
    """Store an uploaded file (`file`) in `public/`: allowed types only, 10 MB at most."""
    request.upload_handlers.insert(0, files.LimitedUploadHandler(request))
    return _upload_asset(request, project_id)


@csrf_protect
def _upload_asset(request: HttpRequest, project_id: str) -> HttpResponse:
    project = get_project_for_user(request.user, project_id)
    upload = request.FILES.get("file")
    if getattr(request, "upload_too_large", False):
        messages.error(request, "That file is larger than 10 MB.")
        return _assets_page(request, project, status=413)
    if upload is None:
        messages.error(request, "Choose a file to upload.")
        return _assets_page(request, project, status=400)
    try:
        path = files.save_asset(project, upload)
    except files.FileAccessError as exc:
        messages.error(request, str(exc))
        return _assets_page(request, project, status=400)
    messages.success(request, f"Uploaded {path}. Use it in the site as /{path.split('/', 1)[1]}.")
    return redirect("project-assets", project_id=project.id)


@login_required
@require_POST
def rename_asset(request: HttpRequest, project_id: str) -> HttpResponse:
    project = get_project_for_user(request.user, project_id)
    try:
        path = files.rename_asset(
            project, request.POST.get("path", ""), request.POST.get("name", "")
        )
    except files.FileAccessError as exc:
        messages.error(request, str(exc))
        return _assets_page(request, project, status=400)
    messages.success(request, f"Renamed to {path}.")
    return redirect("project-assets", project_id=project.id)


@login_required
@require_POST
def delete_asset(request: HttpRequest, project_id: str) -> HttpResponse:
    project = get_project_for_user(request.user, project_id)
    try:
        files.delete_asset(project, request.POST.get("path", ""))
    except files.FileAccessError as exc:
        messages.error(request, str(exc))
        return _assets_page(request, project, status=400)
    messages.success(request, "Deleted.")
    return redirect("project-assets", project_id=project.id)


@login_required
@require_GET
def export(request: HttpRequest, project_id: str) -> FileResponse:
    """Download the site as a zip, without dependencies, build output or secrets."""
    project = get_project_for_user(request.user, project_id)
    archive = files.export_zip(project)
    filename = f"{project.name or project.id}.zip".replace('"', "")
    return FileResponse(archive, as_attachment=True, filename=filename)
