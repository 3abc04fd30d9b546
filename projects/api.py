"""doce's JSON API (django-ninja), mounted at `/api/`; OpenAPI schema at `/api/openapi.json`,
interactive docs at `/api/docs`.

Authentication: a personal API token (`Authorization: Bearer doce_…`, made in Settings) or
the browser session (then Django's CSRF token is required on unsafe methods). Errors are
JSON `{"detail": str}`; validation errors are 422 with `errors: [{field, message}]`. Another
user's project is a 404, exactly like a missing one.
"""

from __future__ import annotations

import json
from datetime import datetime

from django.http import HttpRequest
from django.http.request import RawPostDataException
from ninja import Field, NinjaAPI, Schema, Status
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser
from ninja.security import HttpBearer, SessionAuth

from accounts.services import user_for_api_token
from projects import services
from projects.models import Project, get_project_for_user
from projects.presenters import preview_url


class TokenAuth(HttpBearer):
    """`Authorization: Bearer <personal API token>`."""

    def authenticate(self, request: HttpRequest, token: str):
        user = user_for_api_token(token)
        if user is not None:
            request.user = user
        return user


class BodyNotJson(ValueError):
    """The request body is not a JSON document."""


class JsonParser(Parser):
    """Request bodies are JSON; anything else raises `BodyNotJson` (answered 422, `body`)."""

    def parse_body(self, request: HttpRequest):
        try:
            return json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BodyNotJson(str(exc)) from None


api = NinjaAPI(
    title="doce API",
    version="1",
    description="Create projects from prompts, talk to their agents, start and stop them.",
    auth=[TokenAuth(), SessionAuth()],
    urls_namespace="api",
    parser=JsonParser(),
)


# --- Schemas -----------------------------------------------------------------------------------


class ProjectIn(Schema):
    prompt: str = Field(min_length=1, max_length=services.PROMPT_MAX, description="What to build.")
    model: str | None = Field(
        default=None, max_length=200, description="`provider/model`; default: yours."
    )
    name: str | None = Field(default=None, max_length=120)


class PromptIn(Schema):
    text: str = Field(min_length=1, max_length=services.PROMPT_MAX)
    model: str | None = Field(default=None, max_length=200)


class Accepted(Schema):
    id: str
    status: str


class ProjectOut(Schema):
    id: str
    name: str
    status: str
    status_reason: str
    model: str
    preview_url: str | None
    prompt_sent: bool
    prompt_completed: bool
    created_at: datetime
    updated_at: datetime


class Error(Schema):
    detail: str


def _out(request: HttpRequest, project: Project) -> dict:
    return {
        "id": project.id,
        "name": project.name,
        "status": project.status,
        "status_reason": project.status_reason,
        "model": project.model,
        "preview_url": preview_url(request, project),
        "prompt_sent": project.prompt_sent,
        "prompt_completed": project.prompt_completed,
        "created_at": project.created_at,
        "updated_at": project.updated_at,
    }


def _accepted(project: Project) -> Status:
    project.refresh_from_db(fields=["status"])
    return Status(202, {"id": project.id, "status": project.status})


# --- Errors --------------------------------------------------------------------------------------


@api.exception_handler(services.ProjectActionError)
def action_error(request: HttpRequest, exc: services.ProjectActionError):
    return api.create_response(request, {"detail": str(exc)}, status=exc.status)


@api.exception_handler(NinjaValidationError)
def validation_error(request: HttpRequest, exc: NinjaValidationError):
    errors = []
    for error in exc.errors:
        location = [str(part) for part in error.get("loc", ()) if part not in ("body", "payload")]
        errors.append({"field": ".".join(location) or "body", "message": error.get("msg", "")})
    return _invalid(request, errors)


def _invalid(request: HttpRequest, errors: list[dict]):
    fields = ", ".join(e["field"] for e in errors)
    return api.create_response(
        request, {"detail": f"Invalid input: {fields}", "errors": errors}, status=422
    )


@api.exception_handler(HttpError)
def http_error(request: HttpRequest, exc: HttpError):
    # django-ninja turns any body parse failure into a 400; a body that is not JSON is
    # invalid input like any other (422, field `body`).
    if isinstance(exc.__cause__, BodyNotJson):
        message = f"The body is not valid JSON: {exc.__cause__}"
        return _invalid(request, [{"field": "body", "message": message}])
    return api.create_response(request, {"detail": str(exc)}, status=exc.status_code)


@api.exception_handler(RawPostDataException)
def form_body(request: HttpRequest, exc: RawPostDataException):
    # A form-encoded POST with session auth: the CSRF check has already read it as a form.
    message = "Send the body as JSON (Content-Type: application/json)."
    return _invalid(request, [{"field": "body", "message": message}])


# --- Endpoints ----------------------------------------------------------------------------------

ID = "{project_id}"


@api.post("/projects", response={202: Accepted, 400: Error, 412: Error}, tags=["projects"])
def create_project(request: HttpRequest, payload: ProjectIn):
    """Create a project from a prompt; the agent starts building it at once (202)."""
    project = services.create_project(
        request.user, prompt=payload.prompt, model=payload.model, name=payload.name or ""
    )
    return _accepted(project)


@api.get("/projects", response=list[ProjectOut], tags=["projects"])
def list_projects(request: HttpRequest):
    """Your projects, most recently changed first."""
    projects = Project.objects.for_user(request.user).order_by("-updated_at")
    return [_out(request, project) for project in projects]


@api.get(f"/projects/{ID}", response={200: ProjectOut, 404: Error}, tags=["projects"])
def get_project(request: HttpRequest, project_id: str):
    """One project: status, preview URL and prompt flags."""
    return _out(request, get_project_for_user(request.user, project_id))


@api.post(
    f"/projects/{ID}/prompt",
    response={202: Accepted, 400: Error, 404: Error, 409: Error},
    tags=["projects"],
)
def prompt(request: HttpRequest, project_id: str, payload: PromptIn):
    """Send the agent a message; the stack is started first when it is not running."""
    project = get_project_for_user(request.user, project_id)
    services.send_prompt(project, payload.text, model=payload.model)
    return _accepted(project)


@api.post(
    f"/projects/{ID}/stop", response={202: Accepted, 404: Error, 409: Error}, tags=["projects"]
)
def stop(request: HttpRequest, project_id: str):
    """Stop the project's containers (files and conversation are kept)."""
    project = get_project_for_user(request.user, project_id)
    services.stop_project(project)
    return _accepted(project)


@api.post(
    f"/projects/{ID}/start", response={202: Accepted, 404: Error, 409: Error}, tags=["projects"]
)
def start(request: HttpRequest, project_id: str):
    """Start the project's containers."""
    project = get_project_for_user(request.user, project_id)
    services.start_project(project)
    return _accepted(project)


@api.post(
    f"/projects/{ID}/retry", response={202: Accepted, 404: Error, 409: Error}, tags=["projects"]
)
def retry(request: HttpRequest, project_id: str):
    """Run a project in error again from its failed step (409 when it is not in error)."""
    project = get_project_for_user(request.user, project_id)
    services.retry_project(project)
    return _accepted(project)


@api.delete(f"/projects/{ID}", response={202: Accepted, 404: Error}, tags=["projects"])
def delete(request: HttpRequest, project_id: str):
    """Delete the project: containers, files and the project itself (202; done by a job)."""
    project = get_project_for_user(request.user, project_id)
    services.delete_project(project)
    return _accepted(project)
