"""How projects are shown: preview URLs and status labels for pages and the API."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.http.request import split_domain_port

from jobqueue.models import Job
from projects import chain
from projects.models import Project, project_topic

SHOWN_STATUSES_WITH_PREVIEW = {Project.Status.RUNNING, Project.Status.STARTING}


def preview_host(request: HttpRequest) -> str:
    """The host name browsers reach previews on: `DOCE_PREVIEW_HOST`, else the host the
    request came to (previews publish on `DOCE_BIND_ADDRESS` of the same machine)."""
    if settings.DOCE_PREVIEW_HOST:
        return settings.DOCE_PREVIEW_HOST
    host, _port = split_domain_port(request.get_host())
    return host or "localhost"


def _url_host(request: HttpRequest) -> str:
    host = preview_host(request)
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def preview_url(request: HttpRequest, project: Project) -> str | None:
    """`http://<preview host>:<preview port>/`, or None while no port is allocated."""
    if not project.preview_port:
        return None
    return f"http://{_url_host(request)}:{project.preview_port}/"


def preview_frame_source(request: HttpRequest) -> str:
    """The Content-Security-Policy source of every preview URL: `http://<preview host>:*`.

    Any port, because a project's preview port may be allocated after its page loaded.
    """
    return f"http://{_url_host(request)}:*"


def setup_checklist(project: Project) -> dict:
    """The create chain's steps (`projects.chain`) with the newest job of each (one query).

    Returns `{"steps": [{type, label, state, error, job_id}], "done": bool}`; a step with no
    job yet has state `pending`. `done` once the first prompt has been answered.
    """
    newest: dict[str, Job] = {}
    jobs = Job.objects.filter(
        serial_key=project_topic(project.id), type__in=chain.CREATE_CHAIN
    ).only("id", "type", "state", "last_error")
    for job in jobs.order_by("-id"):
        newest.setdefault(job.type, job)
    steps = []
    for type in chain.CREATE_CHAIN:
        latest = newest.get(type)
        steps.append(
            {
                "type": type,
                "label": chain.STEPS[type].label,
                "state": latest.state if latest else "pending",
                "error": (latest.last_error or "") if latest and latest.state == "failed" else "",
                "job_id": latest.id if latest else None,
            }
        )
    return {"steps": steps, "done": project.prompt_completed}
