"""Production actions: deploy, activate (rollback or roll forward), stop, domains; and the
one writer of the production status.

Each action is atomic with the jobs it enqueues and the events it writes. Callers resolve
the project through `projects.models.get_project_for_user` first. Errors meant for users
are `projects.services.ProjectActionError` (message and HTTP status), as for projects.

Events go to the project's topic (`project:<id>`), so the workspace's existing stream
carries them: `production.status` (shape: `status_payload`).
"""

from __future__ import annotations

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction

import jobqueue
from doce import events
from jobqueue.models import Job, JobState
from productions import edge
from productions.models import (
    DOMAIN_PATTERN,
    Domain,
    IllegalProductionTransition,
    Production,
    Release,
    production_key,
)
from productions.routes import site_url
from projects.models import Project, project_topic
from projects.services import ProjectActionError

log = structlog.get_logger(__name__)

BUILD = "production.build"
START = "production.start"
WAIT_READY = "production.waitReady"
PROMOTE = "production.promote"
ACTIVATE = "production.activate"
RETIRE = "production.retire"
STOP = "production.stop"
# Steps of a deploy or activation: a stop cancels them while they are queued.
DEPLOY_STEPS = (BUILD, START, WAIT_READY, PROMOTE, ACTIVATE)

DOMAINS_MAX = 20


def production_of(project: Project) -> Production:
    """The project's production row (created with status `none` on first use)."""
    production, _ = Production.objects.get_or_create(project=project)
    return production


def status_payload(production: Production) -> dict:
    """The one shape of a `production.status` event and of the API's production object."""
    live = production.live_release
    return {
        "status": production.status,
        "label": production.get_status_display(),
        "error": production.last_error,
        "live_release": live.release_id if live else None,
        "url": site_url(production.project_id) if live else None,
    }


def set_production_status(
    production: Production,
    status: str,
    *,
    error: str | None = None,
    from_: frozenset[str] | set[str] | tuple[str, ...] | None = None,
    **fields,
) -> None:
    """Move `production` to `status` (compare-and-set along `Production.TRANSITIONS`,
    narrowed to `from_`), writing `error` (as `last_error`, when given) and `fields`
    (e.g. `live_release`, `target_release`) in the same update, and emit `production.status`.

    Raises `IllegalProductionTransition` (nothing written) when the row's status does not
    allow it. `production` is refreshed.
    """
    sources = Production.TRANSITIONS[status]
    if from_ is not None:
        sources = sources & frozenset(from_)
    values = {"status": status, **fields}
    if error is not None:
        values["last_error"] = error
    with transaction.atomic():
        updated = Production.objects.filter(pk=production.pk, status__in=list(sources)).update(
            **values
        )
        if not updated:
            current = (
                Production.objects.filter(pk=production.pk).values_list("status", flat=True).first()
            )
            raise IllegalProductionTransition(production.pk, current or "missing", status)
        production.refresh_from_db()
        events.emit(
            project_topic(production.project_id), "production.status", status_payload(production)
        )


def enqueue_production(project: Project, type: str, payload: dict | None = None, **kwargs) -> Job:
    """Queue production job `type` for `project`: serial key `production:<id>`, dedupe key
    `<type>:<id>` (one unfinished job per step)."""
    return jobqueue.enqueue(
        type,
        {"project_id": project.id, **(payload or {})},
        serial_key=production_key(project.id),
        dedupe_key=f"{type}:{project.id}",
        **kwargs,
    )


def _locked(project: Project) -> Production:
    production_of(project)
    # Lock only the production row: Postgres refuses FOR UPDATE on the nullable side of the
    # live release's outer join.
    return (
        Production.objects.select_for_update(of=("self",))
        .select_related("live_release")
        .get(pk=project.pk)
    )


def _refuse_busy(project: Project, production: Production) -> None:
    if project.status == Project.Status.DELETING:
        raise ProjectActionError("This project is being deleted.", status=409)
    if production.status in Production.ACTIVE:
        raise ProjectActionError(
            "A deploy is already on its way; wait for it to finish.", status=409
        )


@transaction.atomic
def deploy(project: Project, user) -> Production:
    """Build the site's current state and make it live (`production.build` and what
    follows). Raises `ProjectActionError` (409) while another deploy runs or the project is
    being deleted."""
    production = _locked(project)
    _refuse_busy(project, production)
    set_production_status(production, Production.Status.QUEUED, error="", target_release=None)
    enqueue_production(project, BUILD, {"user_id": getattr(user, "pk", None)})
    log.info("production.deploy_requested", project_id=project.id)
    return production


@transaction.atomic
def activate(project: Project, release: Release) -> Production:
    """Make a retained release live again (rollback, or roll forward): the same steps as a
    deploy after its build. Raises `ProjectActionError`: 409 while a deploy runs, for the
    release already live, or for a pruned release."""
    production = _locked(project)
    _refuse_busy(project, production)
    if release.state == Release.State.PRUNED:
        raise ProjectActionError("This release was pruned; deploy again instead.", status=409)
    if production.live_release_id == release.pk and production.status == Production.Status.LIVE:
        raise ProjectActionError("This release is live already.", status=409)
    set_production_status(production, Production.Status.QUEUED, error="", target_release=release)
    enqueue_production(project, ACTIVATE, {"release_id": release.release_id})
    return production


@transaction.atomic
def stop(project: Project) -> Production:
    """Stop serving the site: cancel queued deploy steps, then `production.stop` removes the
    route and the containers (releases stay on disk). Raises `ProjectActionError` (409)
    when nothing was ever deployed."""
    production = _locked(project)
    if production.status == Production.Status.NONE:
        raise ProjectActionError("This site was never deployed.", status=409)
    cancel_jobs(project, include_running=True)
    set_production_status(production, Production.Status.STOPPED, error="")
    enqueue_production(project, STOP)
    return production


def cancel_jobs(project: Project | str, *, include_running: bool = False) -> int:
    """Cancel the project's queued production jobs (and ask running ones to stop at their
    next checkpoint with `include_running`); returns how many were asked."""
    project_id = project if isinstance(project, str) else project.id
    states = [JobState.QUEUED, JobState.RUNNING] if include_running else [JobState.QUEUED]
    asked = 0
    for job in Job.objects.filter(serial_key=production_key(project_id), state__in=states):
        if job.type in (STOP, RETIRE):
            continue
        asked += bool(jobqueue.cancel_job(job))
    return asked


def clean_domain(name: str) -> str:
    """`name` as a domain to attach: trimmed, lower case, without a trailing dot. Raises
    `ProjectActionError` (422-style 400) for anything but a valid DNS name of two labels or
    more, and for names under doce's own sites domain."""
    cleaned = str(name).strip().lower().removesuffix(".")
    if len(cleaned) > 253 or not DOMAIN_PATTERN.fullmatch(cleaned):
        raise ProjectActionError(
            "Enter a domain name such as www.example.org (letters, digits, hyphens and dots)."
        )
    sites = settings.DOCE_SITES_DOMAIN.lower()
    if cleaned == sites or cleaned.endswith("." + sites):
        raise ProjectActionError(f"Names under {sites} are doce's own site addresses.")
    return cleaned


@transaction.atomic
def attach_domain(project: Project, name: str) -> Domain:
    """Attach custom domain `name` to the project's site. Raises `ProjectActionError`: 400
    for an invalid name, 409 when it is attached anywhere already (to any project: the
    message does not say whose) or the project has `DOMAINS_MAX` domains."""
    name = clean_domain(name)
    if Domain.objects.filter(project=project).count() >= DOMAINS_MAX:
        raise ProjectActionError(f"A site can have at most {DOMAINS_MAX} domains.", status=409)
    try:
        with transaction.atomic():
            domain = Domain.objects.create(project=project, name=name)
    except IntegrityError:
        raise ProjectActionError(f"{name} is attached to a site already.", status=409) from None
    _domains_changed(project)
    return domain


@transaction.atomic
def detach_domain(project: Project, name: str) -> None:
    """Detach `name` from the project's site; it stops being served at once. Raises
    `ProjectActionError` (404) when the project has no such domain."""
    deleted, _ = Domain.objects.filter(project=project, name=str(name).strip().lower()).delete()
    if not deleted:
        raise ProjectActionError("No such domain.", status=404)
    _domains_changed(project)


def _domains_changed(project: Project) -> None:
    names = list(Domain.objects.filter(project=project).values_list("name", flat=True))
    events.emit(project_topic(project.id), "production.domains", {"domains": names})
    transaction.on_commit(lambda: request_edge_sync())


def request_edge_sync() -> None:
    """Ask the edge to load the current site routes (`productions.routes.site_routes`).

    The edge (issue 11) provides the hook and its deduplicated sync job; until it is
    installed this does nothing and sites are not served.
    """
    edge.request_sync()
