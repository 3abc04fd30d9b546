"""The queue monitor at `/queue`: job list, job detail with its log, and job actions.

Staff see every job; other users see the jobs of their own projects (serialization key
`project:<id>`), and another user's job is a 404. Pause/resume and force cancel are staff
only. Pages render the current state; `monitor.js` keeps them live over the WebSocket
routes in `jobqueue.routing` and re-fetches `?partial=1` fragments on each change.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from doce import events
from jobqueue import services
from jobqueue.models import Job, JobState
from jobqueue.outbox import QUEUE_TOPIC

PAGE_SIZE = 25


def monitor_topics(user) -> list[str]:
    """Outbox topics of the jobs `user` may watch: `queue` for staff, else own projects'."""
    if user.is_staff:
        return [QUEUE_TOPIC]
    from projects.models import Project
    from projects.streams import project_topic

    return [
        project_topic(pid) for pid in Project.objects.for_user(user).values_list("pk", flat=True)
    ]


def get_job_for_user(user, job_id) -> Job:
    """The job `job_id` if `user` may see it, else `Http404` (also for malformed ids)."""
    try:
        return Job.objects.for_user(user).get(pk=int(job_id))
    except (Job.DoesNotExist, ValueError, TypeError):
        raise Http404("No such job") from None


def _filtered_jobs(request: HttpRequest):
    jobs = Job.objects.for_user(request.user)
    state = request.GET.get("state", "")
    if state in JobState.values:
        jobs = jobs.filter(state=state)
    else:
        state = ""
    job_type = request.GET.get("type", "").strip()[:100]
    if job_type:
        jobs = jobs.filter(type=job_type)
    query = request.GET.get("q", "").strip()[:200]
    if query:
        if query.isdigit():
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

    `?partial=1` returns only the table body (the live refresh).
    """
    jobs, filters = _filtered_jobs(request)
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
        "after": events.last_event_id(monitor_topics(request.user)),
    }
    if request.GET.get("partial"):
        return render(request, "queue/_rows.html", context)
    return render(request, "queue/monitor.html", context)


@require_GET
@login_required
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    """`GET /queue/jobs/<id>/`: the job, its payload and its log (`?partial=1`: summary)."""
    job = get_job_for_user(request.user, job_id)
    topics = [QUEUE_TOPIC] if request.user.is_staff else [job.serial_key]
    context = {"job": job, "logs": job.logs.all()[:1000], "after": events.last_event_id(topics)}
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
