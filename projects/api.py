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
from datetime import UTC, datetime
from typing import Literal

import structlog
from django.http import HttpRequest
from django.http.request import RawPostDataException
from ninja import Field, NinjaAPI, Query, Schema, Status
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser
from ninja.security import HttpBearer, SessionAuth
from pydantic import BaseModel

from accounts.services import user_for_api_token
from doce.opencode.agents import client_for_project
from doce.opencode.errors import OpencodeError, diagnostic_for_agent_error
from doce.text import Line, Text
from projects import attachments, services
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


class AttachmentIn(Schema):
    name: Line = Field(min_length=1, max_length=attachments.NAME_MAX, description="File name.")
    content_base64: str = Field(
        min_length=1,
        # base64 of the largest allowed image (4 characters per 3 bytes), plus a data: prefix
        max_length=attachments.MAX_IMAGE_BYTES * 4 // 3 + 100,
        description="The file's bytes in base64 (a `data:…;base64,` prefix is allowed).",
    )


class PromptIn(Schema):
    text: Text = Field(min_length=1, max_length=services.PROMPT_MAX)
    model: Line | None = Field(default=None, max_length=200)
    attachments: list[AttachmentIn] = Field(
        default_factory=list,
        description="Images (PNG, JPEG, WebP, GIF; 5 MB each) and UTF-8 text files (1 MB), "
        "at most 5; the type is read from the content. A refused one refuses the prompt "
        "(400), nothing is sent.",
    )


class RestoreIn(Schema):
    message_id: str = Field(pattern=r"^msg[A-Za-z0-9_]{1,100}$", description="A user message.")


class Restored(Schema):
    undone_from: str = Field(description="The first message undone (shown as undone).")


class Accepted(Schema):
    id: str
    status: str


class PromptAccepted(Accepted):
    queued: bool = Field(
        description="True when the prompt waits in the queue (the project is starting)."
    )


# The project read models are plain pydantic models, not ninja `Schema`s: a `Schema` wraps
# every object it validates in ninja's attribute getter (for ORM objects), which for the list
# of 200 projects was a third of the request's CPU; these are validated from the dicts of
# `_out` by pydantic's core alone. The OpenAPI schema is the same.


class PromptOut(BaseModel):
    state: Literal["", "queued", "running", "completed", "failed"] = Field(
        description="Where the latest prompt stands: queued until the agent takes it, "
        "running while it answers, then completed or failed. Empty before the first prompt."
    )
    failure: str = Field(description="Why it failed (only with `failed`), for the user.")


class AgentOut(BaseModel):
    state: Literal["stopped", "starting", "ready", "stopping"] = Field(
        description="The agent's own readiness: the preview is shown (`status` running) "
        "while the agent is still starting; an idle agent sleeps (`stopped`) while the "
        "preview stays up, and the next prompt wakes it."
    )


class ProjectOut(BaseModel):
    id: str
    name: str
    status: str
    status_reason: str
    agent: AgentOut
    model: str
    preview_url: str | None
    prompt: PromptOut
    prompt_sent: bool = Field(description="Deprecated: read `prompt.state`.")
    prompt_completed: bool = Field(
        description="Deprecated: true once the agent's turn is over, also when it failed; "
        "read `prompt.state`."
    )
    created_at: datetime
    updated_at: datetime


class PartOut(Schema):
    id: str
    type: str = Field(description="`text`, `reasoning`, `tool`, `file`, `step-start`, …")
    text: str | None = Field(
        default=None, description="Text of `text` and `reasoning` parts (empty while streaming)."
    )
    tool: str | None = Field(default=None, description="The tool of a `tool` part.")
    status: str | None = Field(
        default=None, description="A tool call's state: pending, running, completed, error."
    )


class MessageOut(Schema):
    id: str
    role: str = Field(description="`user` or `assistant`.")
    created_at: datetime
    completed_at: datetime | None
    error: str | None = Field(description="Why an assistant turn failed, if it did.")
    parts: list[PartOut]


class ConversationOut(Schema):
    messages: list[MessageOut] = Field(description="Oldest first.")
    next_before: str | None = Field(
        description="Pass as `before` for the page of older messages; null on the first page."
    )


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


# The Project fields `_out` reads: the list loads only these (not the prompt, which can be
# long). A field read by `_out` but missing here would cost a query per project, which
# tests/projects/test_queries.py catches.
PROJECT_OUT_FIELDS = (
    "id",
    "name",
    "status",
    "status_reason",
    "agent_state",
    "model",
    "preview_port",
    "prompt_state",
    "prompt_failure",
    "prompt_sent",
    "prompt_completed",
    "created_at",
    "updated_at",
)


def _out(request: HttpRequest, project: Project) -> dict:
    return {
        "id": project.id,
        "name": project.name,
        "status": project.status,
        "status_reason": project.status_reason,
        "agent": {"state": project.agent_state},
        "model": project.model,
        "preview_url": preview_url(request, project),
        "prompt": {"state": project.prompt_state, "failure": project.prompt_failure},
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
MESSAGES_PAGE_MAX = 200


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
    projects = (
        Project.objects.for_user(request.user).order_by("-updated_at").only(*PROJECT_OUT_FIELDS)
    )
    return [_out(request, project) for project in projects]


@api.get(f"/projects/{ID}", response=answers({200: ProjectOut}, 404), tags=["projects"])
def get_project(request: HttpRequest, project_id: str):
    """One project: status, preview URL and prompt flags."""
    return _out(request, get_project_for_user(request.user, project_id))


@api.post(
    f"/projects/{ID}/prompt",
    response=answers({202: PromptAccepted}, 400, 403, 404, 409, 422, 502),
    tags=["projects"],
)
def prompt(request: HttpRequest, project_id: str, payload: PromptIn):
    """Send the agent a message: straight to a running agent, else through the queue, which
    starts the stack first (the chat's path and rules: `services.send_prompt`). Follow it
    with `prompt.state` of `GET /projects/{id}`; 400 for a refused attachment (or an image
    for a model that takes none); 502 when the running agent refused it."""
    project = get_project_for_user(request.user, project_id)
    try:
        files = attachments.check_attachments(
            [
                (a.name, attachments.decode_base64(a.name, a.content_base64))
                for a in payload.attachments
            ]
        )
    except attachments.AttachmentRefused as exc:
        raise services.ProjectActionError(str(exc)) from None
    sent = services.send_prompt(project, payload.text, model=payload.model, attachments=files)
    project.refresh_from_db(fields=["status"])
    return Status(202, {"id": project.id, "status": project.status, "queued": not sent})


@api.post(
    f"/projects/{ID}/restore",
    response=answers({200: Restored}, 403, 404, 409, 422, 502),
    tags=["projects"],
)
def restore(request: HttpRequest, project_id: str, payload: RestoreIn):
    """Restore the conversation and the files to how they were when the turn of your message
    `message_id` ended: later messages and their file changes are undone. Undo it with
    `/unrestore` until the next prompt makes it final. 409 when the agent is not running, is
    busy, or nothing follows the message; 404 for a message that is not yours."""
    project = get_project_for_user(request.user, project_id)
    return {"undone_from": services.restore_to(project, payload.message_id)}


@api.post(
    f"/projects/{ID}/unrestore",
    response=answers({202: Accepted}, 403, 404, 409, 502),
    tags=["projects"],
)
def unrestore(request: HttpRequest, project_id: str):
    """Undo the last restore (messages and files come back); 409 when there is none or a
    prompt is queued or running."""
    project = get_project_for_user(request.user, project_id)
    services.unrestore(project)
    return _accepted(project)


@api.get(
    f"/projects/{ID}/messages",
    response=answers({200: ConversationOut}, 404, 409, 422, 502),
    tags=["projects"],
)
def messages(
    request: HttpRequest,
    project_id: str,
    limit: int = Query(50, ge=1, le=MESSAGES_PAGE_MAX),
    before: str | None = Query(None, pattern=r"^msg[A-Za-z0-9_]{1,100}$"),
):
    """The conversation with the project's agent: its messages and their parts, oldest first,
    `limit` at a time; page back with `before`. The agent must be running (409 otherwise);
    an agent that cannot be read answers 502."""
    project = get_project_for_user(request.user, project_id)
    client = client_for_project(project)
    if project.status != Project.Status.RUNNING or client is None or not project.agent_session_id:
        raise services.ProjectActionError("Start the project to read its conversation.", status=409)
    try:
        stored = client.messages(project.agent_session_id)
    except OpencodeError as exc:
        raise services.ProjectActionError(exc.diagnostic.message, status=502) from None
    end = len(stored)
    if before is not None:
        found = next((i for i, m in enumerate(stored) if m.info.id == before), None)
        if found is None:
            raise services.ProjectActionError("No message with that id.", status=404)
        end = found
    start = max(0, end - limit)
    return {
        "messages": [_message_out(m) for m in stored[start:end]],
        "next_before": stored[start].info.id if start > 0 else None,
    }


def _when(epoch_ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC) if epoch_ms else None


def _message_out(message) -> dict:
    error = message.info.error
    return {
        "id": message.info.id,
        "role": message.info.role,
        "created_at": _when(message.info.time.created),
        "completed_at": _when(message.info.time.completed),
        "error": diagnostic_for_agent_error(error, source="queue").message if error else None,
        "parts": [
            {
                "id": part.id,
                "type": part.type,
                "text": part.text,
                "tool": part.tool,
                "status": (part.state or {}).get("status"),
            }
            for part in message.parts
        ],
    }


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
