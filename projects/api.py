"""doce's JSON API (django-ninja), mounted at `/api/`; OpenAPI schema at `/api/openapi.json`,
interactive docs at `/api/docs`.

Authentication: a personal API token (`Authorization: Bearer doce_…`, made in Settings; the
scheme name in any case) or the browser session (then Django's CSRF token is required on
unsafe methods). A missing, unknown or revoked token, or one of a deactivated user, is a 401;
a signed-in session without the CSRF token a 403. Errors are JSON `{"detail": str}`;
validation errors are 422 with `errors: [{field, message}]`. Another user's project is a
404, exactly like a missing one. Text fields refuse control characters (`doce.text`).
"""

from __future__ import annotations

import json
from datetime import datetime

import structlog
from django.http import HttpRequest
from django.http.request import RawPostDataException
from ninja import Field, NinjaAPI, Schema, Status
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser
from ninja.security import HttpBearer, SessionAuth

from accounts.services import user_for_api_token
from doce.text import Line, Text
from projects import services
from projects.models import Project, get_project_for_user
from projects.presenters import preview_url


class TokenAuth(HttpBearer):
    """`Authorization: Bearer <personal API token>`."""

    def authenticate(self, request: HttpRequest, token: str):
        user = user_for_api_token(token)
        if user is not None:
            request.user = user
            # The session middleware saw no user: bind it for this request's log lines.
            structlog.contextvars.bind_contextvars(user_id=user.pk)
        return user


class BrowserSessionAuth(SessionAuth):
    """The signed-in browser session, with Django's CSRF check on unsafe methods.

    Without a signed-in session there is nothing to check: the request is unauthenticated
    (401), not a CSRF failure (django-ninja's `SessionAuth` answers 403 "CSRF check Failed"
    to any POST without a session, e.g. one with a wrong bearer token).
    """

    def __call__(self, request: HttpRequest):
        if not request.user.is_authenticated:
            return None
        return super().__call__(request)


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
    auth=[TokenAuth(), BrowserSessionAuth()],
    urls_namespace="api",
    parser=JsonParser(),
)


# --- Schemas -----------------------------------------------------------------------------------


class ProjectIn(Schema):
    prompt: Text = Field(min_length=1, max_length=services.PROMPT_MAX, description="What to build.")
    model: Line | None = Field(
        default=None, max_length=200, description="`provider/model`; default: yours."
    )
    name: Line | None = Field(
        default=None,
        max_length=services.PROJECT_NAME_MAX,
        description="One line (whitespace runs become one space); default: from the prompt.",
    )


class PromptIn(Schema):
    text: Text = Field(min_length=1, max_length=services.PROMPT_MAX)
    model: Line | None = Field(default=None, max_length=200)


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


class FieldError(Schema):
    field: str
    message: str


class Invalid(Schema):
    detail: str
    errors: list[FieldError]


def answers(success: dict, *errors: int) -> dict:
    """An operation's documented responses: `success`, 401 (every route needs a token or a
    session) and each status of `errors` (`Invalid` for 422, else `Error`). 403 belongs to
    unsafe methods (a session without its CSRF token), 404 to routes of one project, 422 to
    routes with a body."""
    documented = {**success, 401: Error}
    for status in errors:
        documented[status] = Invalid if status == 422 else Error
    return documented


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


@api.post("/projects", response=answers({202: Accepted}, 400, 403, 412, 422), tags=["projects"])
def create_project(request: HttpRequest, payload: ProjectIn):
    """Create a project from a prompt; the agent starts building it at once (202)."""
    project = services.create_project(
        request.user, prompt=payload.prompt, model=payload.model, name=payload.name or ""
    )
    return _accepted(project)


@api.get("/projects", response=answers({200: list[ProjectOut]}), tags=["projects"])
def list_projects(request: HttpRequest):
    """Your projects, most recently changed first."""
    projects = Project.objects.for_user(request.user).order_by("-updated_at")
    return [_out(request, project) for project in projects]


@api.get(f"/projects/{ID}", response=answers({200: ProjectOut}, 404), tags=["projects"])
def get_project(request: HttpRequest, project_id: str):
    """One project: status, preview URL and prompt flags."""
    return _out(request, get_project_for_user(request.user, project_id))


@api.post(
    f"/projects/{ID}/prompt",
    response=answers({202: Accepted}, 400, 403, 404, 409, 422),
    tags=["projects"],
)
def prompt(request: HttpRequest, project_id: str, payload: PromptIn):
    """Send the agent a message; the stack is started first when it is not running."""
    project = get_project_for_user(request.user, project_id)
    services.send_prompt(project, payload.text, model=payload.model)
    return _accepted(project)


@api.post(
    f"/projects/{ID}/stop", response=answers({202: Accepted}, 403, 404, 409), tags=["projects"]
)
def stop(request: HttpRequest, project_id: str):
    """Stop the project's containers (files and conversation are kept)."""
    project = get_project_for_user(request.user, project_id)
    services.stop_project(project)
    return _accepted(project)


@api.post(
    f"/projects/{ID}/start", response=answers({202: Accepted}, 403, 404, 409), tags=["projects"]
)
def start(request: HttpRequest, project_id: str):
    """Start the project's containers."""
    project = get_project_for_user(request.user, project_id)
    services.start_project(project)
    return _accepted(project)


@api.post(
    f"/projects/{ID}/retry", response=answers({202: Accepted}, 403, 404, 409), tags=["projects"]
)
def retry(request: HttpRequest, project_id: str):
    """Run a project in error again from its failed step (409 when it is not in error)."""
    project = get_project_for_user(request.user, project_id)
    services.retry_project(project)
    return _accepted(project)


@api.delete(f"/projects/{ID}", response=answers({202: Accepted}, 403, 404), tags=["projects"])
def delete(request: HttpRequest, project_id: str):
    """Delete the project: containers, files and the project itself (202; done by a job)."""
    project = get_project_for_user(request.user, project_id)
    services.delete_project(project)
    return _accepted(project)
