"""Project pages: dashboard, workspace, project actions, files, assets and export."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from csp.decorators import csp_update
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
)
from django.shortcuts import redirect, render
from django.template.backends.utils import csrf_input
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_exempt, xframe_options_sameorigin
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from accounts.services import available_models, default_model
from doce.engine_health import recorded_engine
from doce.events import last_event_id
from projects import files, services
from projects.forms import CreateProjectForm
from projects.models import Project, get_project_for_user
from projects.presenters import (
    DASHBOARD_CARD_FIELDS,
    dashboard_cards,
    preview_address,
    preview_frame_source,
    preview_url,
    project_menu,
    setup_checklist,
)


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    """The signed-in user's projects, newest edit first, and the create form."""
    return _dashboard(request)


def _dashboard(request: HttpRequest, form=None, status: int = 200) -> HttpResponse:
    models = available_models(request.user)
    form = form or CreateProjectForm(models=models, initial={"model": default_model(request.user)})
    # Before the projects are read (see last_event_id): new projects' events are replayed.
    after = last_event_id()
    projects = list(
        Project.objects.for_user(request.user).order_by("-updated_at").only(*DASHBOARD_CARD_FIELDS)
    )
    context = {
        "projects": projects,
        "cards": dashboard_cards(projects),
        # The hidden CSRF field of every card's forms, rendered once (as `{% csrf_token %}`
        # renders it) instead of two tags per card.
        "csrf_input": csrf_input(request),
        "form": form,
        "has_models": bool(models),
        # What a worker recorded: a page render never waits on the Engine.
        "engine": recorded_engine(),
        # The stream resumes after what this page shows, new projects included.
        "last_event_id": after,
    }
    return render(request, "projects/dashboard.html", context, status=status)


# /projects/<id>/files/


@xframe_options_sameorigin  # shown inside the workspace's Files tab
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


@xframe_options_sameorigin  # shown inside the workspace's Assets tab
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


def _assets_redirect(request: HttpRequest, project: Project) -> HttpResponse:
    url = reverse("project-assets", kwargs={"project_id": project.id})
    return redirect(url + ("?embed=1" if request.POST.get("embed") else ""))


# The POST views answer inside the Assets tab too (an error re-renders the page there), so
# their responses are frameable by doce like the page's: Django's decorator sets the header on
# whatever the view returns, errors included.
@xframe_options_sameorigin
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
    return _assets_redirect(request, project)


@xframe_options_sameorigin
@login_required
@require_POST
def rename_asset(request: HttpRequest, project_id: str) -> HttpResponse:
    """Rename an asset (`path`) to `name`, keeping its extension (`files.rename_asset`)."""
    project = get_project_for_user(request.user, project_id)
    try:
        path = files.rename_asset(
            project, request.POST.get("path", ""), request.POST.get("name", "")
        )
    except files.FileAccessError as exc:
        messages.error(request, str(exc))
        return _assets_page(request, project, status=400)
    messages.success(request, f"Renamed to {path}.")
    return _assets_redirect(request, project)


@xframe_options_sameorigin
@login_required
@require_POST
def delete_asset(request: HttpRequest, project_id: str) -> HttpResponse:
    """Delete an asset (`path`) from `public/`."""
    project = get_project_for_user(request.user, project_id)
    try:
        files.delete_asset(project, request.POST.get("path", ""))
    except files.FileAccessError as exc:
        messages.error(request, str(exc))
        return _assets_page(request, project, status=400)
    messages.success(request, "Deleted.")
    return _assets_redirect(request, project)


@login_required
@require_GET
def export(request: HttpRequest, project_id: str) -> FileResponse:
    """Download the site as a zip, without dependencies, build output or secrets."""
    project = get_project_for_user(request.user, project_id)
    archive = files.export_zip(project)
    return FileResponse(archive, as_attachment=True, filename=f"{files.export_name(project)}.zip")


# --- Create and workspace ----------------------------------------------------------------------


@login_required
@require_POST
def create(request: HttpRequest) -> HttpResponse:
    """Create a project from the dashboard form (`prompt`, `model`) and open its workspace."""
    form = CreateProjectForm(request.POST, models=available_models(request.user))
    if not form.is_valid():
        return _dashboard(request, form=form, status=400)
    try:
        project = services.create_project(
            request.user, prompt=form.cleaned_data["prompt"], model=form.cleaned_data["model"]
        )
    except services.ProjectActionError as exc:
        form.add_error(None, str(exc))
        return _dashboard(request, form=form, status=exc.status)
    return redirect("project-workspace", project_id=project.id)


def _frames_previews(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponseBase]:
    """Let the page `view` renders frame its project's preview (CSP frame-src: the preview's
    exact origin)."""

    @wraps(view)
    def wrapper(request: HttpRequest, project_id: str, *args, **kwargs) -> HttpResponseBase:
        source = preview_frame_source(Project(id=project_id))
        allow = csp_update({"frame-src": [source]})
        framed: Callable[..., HttpResponseBase] = allow(view)
        return framed(request, project_id, *args, **kwargs)

    return wrapper


@login_required
@require_GET
@xframe_options_exempt  # a redirect only: the preview frame loads through it
def preview_enter(request: HttpRequest, project_id: str) -> HttpResponse:
    """Redirect the owner into the project's preview with a fresh entry token (the workspace
    frame and "Open in new tab" load this), at `?path=` (a path on the preview; `/` when
    absent or not a path); 404 for anyone else or while no port exists."""
    project = get_project_for_user(request.user, project_id)
    target = preview_url(request, project, request.GET.get("path", "/")[:2000])
    if target is None:
        raise Http404("The preview is not available.")
    response = HttpResponseRedirect(target)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


@login_required
@require_GET
@_frames_previews
def workspace(request: HttpRequest, project_id: str) -> HttpResponse:
    """The project workspace: setup checklist, chat, preview, logs, files and assets."""
    after = last_event_id()  # before the state the page shows: see last_event_id
    project = get_project_for_user(request.user, project_id)
    services.mark_viewed(project)
    context = {
        "project": project,
        "preview_address": preview_address(project),
        "preview_origin": preview_frame_source(project),
        "menu": project_menu(project),
        "models": available_models(request.user),
        "checklist": setup_checklist(project),
        "last_event_id": after,
    }
    return render(request, "projects/workspace.html", context)


# --- Project menu actions --------------------------------------------------------------------

_ACTIONS = {
    "stop": (services.stop_project, "Stopping {name}."),
    "start": (services.start_project, "Starting {name}."),
    "restart-preview": (services.restart_preview, "Restarting the preview of {name}."),
    "delete": (services.delete_project, "Deleting {name}."),
}


@login_required
@require_POST
def action(request: HttpRequest, project_id: str, name: str) -> HttpResponse:
    """Run one project-menu action (stop, start, restart-preview, delete)."""
    project = get_project_for_user(request.user, project_id)
    if name not in _ACTIONS:
        raise Http404("No such action")
    do, done = _ACTIONS[name]
    if _attempt(request, do, project):
        messages.info(request, done.format(name=project.name))
        if name == "delete":
            return redirect("dashboard")
    return _back(request, project)


@login_required
@require_POST
def rename(request: HttpRequest, project_id: str) -> HttpResponse:
    project = get_project_for_user(request.user, project_id)
    _attempt(request, services.rename_project, project, request.POST.get("name", ""))
    return _back(request, project)


@login_required
@require_POST
def change_model(request: HttpRequest, project_id: str) -> HttpResponse:
    project = get_project_for_user(request.user, project_id)
    _attempt(request, services.change_model, project, request.POST.get("model", ""))
    return _back(request, project)


@login_required
@require_POST
def retry_step(request: HttpRequest, project_id: str, job_id: int) -> HttpResponse:
    """Retry a failed setup step of this project (a new job with the same payload)."""
    project = get_project_for_user(request.user, project_id)
    _attempt(request, services.retry_step, project, job_id)
    return _back(request, project)


def _attempt(request: HttpRequest, service, *args) -> bool:
    """Call a service action; a `ProjectActionError` becomes an error message. True if done."""
    try:
        service(*args)
    except services.ProjectActionError as exc:
        messages.error(request, str(exc))
        return False
    return True


def _back(request: HttpRequest, project: Project) -> HttpResponse:
    if request.POST.get("next") == "dashboard":
        return redirect("dashboard")
    return redirect("project-workspace", project_id=project.id)
