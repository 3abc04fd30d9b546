"""The queue monitor at `/queue`: job list, job detail with its log, and job actions.

Staff see every job; other users see the jobs whose serial keys a domain app says they own
(`jobqueue.visibility`: projects registers `project:<id>` of each own project), and another
user's job is a 404. Pause/resume and force cancel are staff
only. Pages render the current state; `monitor.js` keeps them live over the WebSocket
routes in `jobqueue.routing` and re-fetches `?partial=1` fragments on each change.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from doce import events
from doce.text import InvalidText, query_line
from jobqueue import services
from jobqueue.models import Job, JobState
from jobqueue.outbox import QUEUE_TOPIC
from jobqueue.visibility import visible_serial_keys

PAGE_SIZE = 25


def monitor_topics(user) -> list[str]:
    """Outbox topics of the jobs `user` may watch: `queue` for staff, else the serial keys
    of the jobs they own (a job's events go to its serial key's topic too)."""
    if user.is_staff:
        return [QUEUE_TOPIC]
    return visible_serial_keys(user)


def job_topics(user, job: Job) -> list[str]:
    """Outbox topics that carry `job`'s events to `user` (who may see it): `queue` for
    staff, else the job's serial key."""
    if user.is_staff:
        return [QUEUE_TOPIC]
    return [job.serial_key] if job.serial_key else []


def get_job_for_user(user, job_id) -> Job:
    """The job `job_id` if `user` may see it, else `Http404` (also for malformed ids)."""
    try:
        return Job.objects.for_user(user).get(pk=int(job_id))
    except (Job.DoesNotExist, ValueError, TypeError):
        raise Http404("No such job") from None


def _filtered_jobs(user, params: QueryDict):
    """The jobs `user` may see, filtered by `params` (state, type, q); raises `InvalidText`
    for a filter with control characters."""
    jobs = Job.objects.for_user(user)
    state = params.get("state", "")
    if state in JobState.values:
        jobs = jobs.filter(state=state)
    else:
        state = ""
    job_type = query_line(params, "type", max_length=100)
    if job_type:
        jobs = jobs.filter(type=job_type)
    query = query_line(params, "q", max_length=200)
    if query:
        # A job id: ASCII or other decimal digits (`int` reads them; not "²", which
        # `isdigit` accepts), short enough for a 64-bit column.
        if query.isdecimal() and len(query) <= 18:
            jobs = jobs.filter(pk=int(query))
        else:
            jobs = jobs.filter(dedupe_key__icontains=query) | jobs.filter(
                serial_key__icontains=query
            )
    filters = {"state": state, "type": job_type, "q": query}
    return jobs.order_by("-id"), filters


@require_GET
@login_required
def monitor(request: HttpRequest) -> HttpResponse:
    """`GET /queue/?state=&type=&q=&page=`: 25 jobs a page, newest first.

    `?partial=1` returns only the table body (the live refresh). A filter with control
    characters is a 400 showing the unfiltered list and why.
    """
    status = 200
    after = events.last_event_id(monitor_topics(request.user))  # before the jobs: see there
    try:
        jobs, filters = _filtered_jobs(request.user, request.GET)
    except InvalidText as exc:
        messages.error(request, f"That filter can't be used: {exc}")
        jobs, filters = _filtered_jobs(request.user, QueryDict())
        status = 400
    page = Paginator(jobs, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "filters": filters,
        "states": JobState.choices,
        "types": Job.objects.for_user(request.user)
        .values_list("type", flat=True)
        .distinct()
        .order_by("type"),
        "paused": services.is_paused(),
        "after": after,
    }
    if request.GET.get("partial"):
        return render(request, "queue/_rows.html", context, status=status)
    return render(request, "queue/monitor.html", context, status=status)


@require_GET
@login_required
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    """`GET /queue/jobs/<id>/`: the job, its payload and its log (`?partial=1`: summary)."""
    after = events.last_event_id()  # before the job is read: see last_event_id
    job = get_job_for_user(request.user, job_id)
    context = {"job": job, "logs": job.logs.all()[:1000], "after": after}
    if request.GET.get("partial"):
        return render(request, "queue/_job_summary.html", context)
    return render(request, "queue/job_detail.html", context)


def _back(request: HttpRequest, fallback: str) -> HttpResponseRedirect:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}):
        return HttpResponseRedirect(target)
    return HttpResponseRedirect(fallback)


def _job_action(request: HttpRequest, job_id: int, act, done: str, not_done: str) -> HttpResponse:
    """Apply `act(job)` to one of the user's jobs and say how it went (`{pk}` in the texts)."""
    job = get_job_for_user(request.user, job_id)
    if act(job):
        messages.success(request, done.format(pk=job.pk))
    else:
        messages.warning(request, not_done.format(pk=job.pk))
    return _back(request, reverse("queue:job", args=[job.pk]))


@require_POST
@login_required
def cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    return _job_action(
        request,
        job_id,
        services.cancel_job,
        "Cancel of job #{pk} requested.",
        "Job #{pk} is already finished or cancelling.",
    )


@require_POST
@login_required
def retry(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_job_for_user(request.user, job_id)
    try:
        new = services.retry_job(job)
    except ValueError as exc:  # the type is gone or its payload no longer validates
        messages.error(request, f"Job #{job.pk} can't be retried: {exc}")
        return _back(request, reverse("queue:job", args=[job.pk]))
    if new is None:
        messages.warning(
            request,
            f"Job #{job.pk} is {job.get_state_display().lower()}: only a failed or cancelled "
            "job can be retried.",
        )
        return _back(request, reverse("queue:job", args=[job.pk]))
    messages.success(request, f"Job #{job.pk} retried as job #{new.pk}.")
    return HttpResponseRedirect(reverse("queue:job", args=[new.pk]))


@require_POST
@login_required
def run_now(request: HttpRequest, job_id: int) -> HttpResponse:
    return _job_action(
        request,
        job_id,
        services.run_job_now,
        "Job #{pk} will run now.",
        "Job #{pk} is not waiting for a later time.",
    )


def _staff_only(request: HttpRequest) -> None:
    if not request.user.is_staff:
        raise Http404("No such page")


@require_POST
@login_required
def force_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    _staff_only(request)
    return _job_action(
        request,
        job_id,
        services.force_cancel_job,
        "Job #{pk} force-cancelled; its lease is revoked.",
        "Job #{pk} is already finished.",
    )


@require_POST
@login_required
def pause(request: HttpRequest) -> HttpResponse:
    _staff_only(request)
    services.pause_queue()
    messages.success(request, "Queue paused: running jobs go on, no new job starts.")
    return _back(request, reverse("queue:monitor"))


@require_POST
@login_required
def resume(request: HttpRequest) -> HttpResponse:
    _staff_only(request)
    services.resume_queue()
    messages.success(request, "Queue resumed.")
    return _back(request, reverse("queue:monitor"))
