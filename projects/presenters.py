"""How projects are shown: preview URLs and status labels for pages and the API."""

from __future__ import annotations

from django.http import HttpRequest

from jobqueue.models import Job, JobState
from projects import chain
from projects.models import Project, PromptState, project_topic
from projects.preview_access import entry_url, preview_origin

SHOWN_STATUSES_WITH_PREVIEW = {Project.Status.RUNNING, Project.Status.STARTING}


# The project menu's state-dependent actions: (label, action in `projects.views._ACTIONS`,
# the statuses it is offered in). The page renders every one and hides those not valid now;
# static/js/layout.js shows and hides them as the status changes (reading `data-valid-in`).
MENU_ACTIONS = [
    ("Start", "start", (Project.Status.STOPPED, Project.Status.ERROR)),
    ("Stop", "stop", (Project.Status.STARTING, Project.Status.RUNNING, Project.Status.ERROR)),
    ("Restart preview", "restart-preview", (Project.Status.RUNNING,)),
]


def project_menu(project: Project) -> list[dict]:
    """The menu's actions for `project`: `[{label, action, valid_in: "a b", shown: bool}]`."""
    return [
        {
            "label": label,
            "action": action,
            "valid_in": " ".join(valid_in),
            "shown": project.status in valid_in,
        }
        for label, action, valid_in in MENU_ACTIONS
    ]


def preview_address(project: Project) -> str:
    """The preview's own origin and root, `http://p-<id>.<DOCE_PREVIEW_DOMAIN>:<port>/`: shown
    to the user; only its owner, after the entry handshake, gets past the edge there."""
    return f"{preview_origin(project.id)}/"


def preview_url(request: HttpRequest, project: Project, path: str = "/") -> str | None:
    """A fresh entry URL into the preview at `path` (`projects.preview_access.entry_url`: a
    signed, single-use token valid 60 s) for the signed-in owner; None while no port is
    allocated."""
    if not project.preview_port or not request.user.is_authenticated:
        return None
    return entry_url(request.user.pk, project.id, path)


def preview_frame_source(project: Project) -> str:
    """The Content-Security-Policy source of the project's preview: its exact origin."""
    return preview_origin(project.id)


def setup_checklist(project: Project) -> dict:
    """The create chain's steps (`chain.CREATE_CHAIN`, or `chain.WARM_CREATE_CHAIN` when the
    project claimed a warm stack) with the newest job of each (one query).

    Returns `{"steps": [{type, label, state, error, job_id}], "done": bool}`; a step with no
    job yet has state `pending`. `done` once the create chain is over: its first answer was
    recorded (`prompt_completed`), or failed after the prompt reached the agent, or a later
    prompt is being tracked (the chain's last step, `opencode.awaitIdle`, for a second
    prompt), or the chain's first job is gone (pruned, or a project made without it). A
    later prompt runs some of the same steps; it never brings the checklist back.
    """
    newest: dict[str, Job] = {}
    jobs = Job.objects.filter(
        serial_key=project_topic(project.id),
        type__in={*chain.CREATE_CHAIN, *chain.WARM_CREATE_CHAIN},
    ).only("id", "type", "state", "last_error")
    for job in jobs.order_by("-id"):
        newest.setdefault(job.type, job)
    # A project that claimed a warm stack began with `project.adopt`, not `project.create`.
    create_chain = chain.create_chain(chain.ADOPT if chain.ADOPT in newest else None)
    steps = []
    for type in create_chain:
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
    return {"steps": steps, "done": _create_chain_over(project, newest, create_chain)}


def _create_chain_over(
    project: Project, newest: dict[str, Job], create_chain: tuple[str, ...]
) -> bool:
    if project.prompt_completed or create_chain[0] not in newest:
        return True
    sent = newest.get(chain.SEND_PROMPT)
    if project.prompt_state == PromptState.FAILED and sent and sent.state == JobState.SUCCEEDED:
        return True
    tracked = Job.objects.filter(
        serial_key=project_topic(project.id), type=create_chain[-1]
    ).values_list("payload", flat=True)
    return len({(payload or {}).get("since_ms") for payload in tracked}) > 1
