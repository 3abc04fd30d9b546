"""Operator admin for the queue: read-only job rows, explicit actions, pause/resume."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from jobqueue import services
from jobqueue.models import Job, JobLog, PeriodicRun, WorkerHeartbeat


class JobLogInline(admin.TabularInline):
    model = JobLog
    fields = ("created_at", "level", "attempt", "message", "fields", "formatted_traceback")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    @admin.display(description="traceback")
    def formatted_traceback(self, obj: JobLog) -> str:
        return format_html("<pre>{}</pre>", obj.traceback) if obj.traceback else "-"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Jobs are read-only; operators act through the actions and pause/resume buttons."""

    list_display = (
        "id",
        "type",
        "state_badge",
        "attempts_display",
        "serial_key",
        "dedupe_key",
        "run_at",
        "locked_by",
        "updated_at",
    )
    list_filter = ("state", "type")
    search_fields = ("=id", "dedupe_key", "serial_key")
    show_full_result_count = False
    list_per_page = 50
    inlines = [JobLogInline]
    actions = ["retry_jobs", "cancel_jobs", "run_jobs_now", "force_cancel_jobs"]
    change_list_template = "admin/queue/job/change_list.html"

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Job._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return obj is None or not obj.is_active

    def get_search_fields(self, request):
        # An exact id lookup only for a number; any other text searches the keys.
        if request.GET.get("q", "").strip().isdigit():
            return ("=id", "dedupe_key", "serial_key")
        return ("dedupe_key", "serial_key")

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj: Job) -> str:
        suffix = " (cancel requested)" if obj.cancel_requested_at and obj.is_active else ""
        return format_html("{}{}", obj.get_state_display(), suffix)

    @admin.display(description="attempts")
    def attempts_display(self, obj: Job) -> str:
        return f"{obj.attempts}/{obj.max_attempts}"

    def _report(self, request, verb: str, touched: int, total: int) -> None:
        level = messages.SUCCESS if touched else messages.WARNING
        self.message_user(request, f"{verb} {touched} of {total} selected job(s).", level)

    @admin.action(description="Retry failed or cancelled (new job, same payload)")
    def retry_jobs(self, request, queryset) -> None:
        created = [services.retry_job(job) for job in queryset]
        self._report(request, "Retried", sum(1 for job in created if job is not None), len(created))

    @admin.action(description="Cancel (queued now, running at its next checkpoint)")
    def cancel_jobs(self, request, queryset) -> None:
        touched = sum(services.cancel_job(job) for job in queryset)
        self._report(request, "Cancelled or requested cancel of", touched, queryset.count())

    @admin.action(description="Run now")
    def run_jobs_now(self, request, queryset) -> None:
        touched = sum(services.run_job_now(job) for job in queryset)
        self._report(request, "Made due now", touched, queryset.count())

    @admin.action(description="Force cancel (revoke lease)")
    def force_cancel_jobs(self, request, queryset) -> None:
        touched = sum(services.force_cancel_job(job) for job in queryset)
        self._report(request, "Force-cancelled", touched, queryset.count())

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("pause/", wrap(require_POST(self.pause_view)), name="queue_job_pause"),
            path("resume/", wrap(require_POST(self.resume_view)), name="queue_job_resume"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "queue_paused": services.is_paused()}
        return super().changelist_view(request, extra_context)

    def pause_view(self, request: HttpRequest):
        return self._switch(request, paused=True)

    def resume_view(self, request: HttpRequest):
        return self._switch(request, paused=False)

    def _switch(self, request: HttpRequest, *, paused: bool):
        if not self.has_view_permission(request):
            return HttpResponseRedirect(reverse("admin:index"))
        changed = services.set_paused(paused)
        word = "paused" if paused else "resumed"
        self.message_user(request, f"Queue {word}." if changed else f"Queue was already {word}.")
        return HttpResponseRedirect(reverse("admin:queue_job_changelist"))


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("worker_id", "hostname", "pid", "concurrency", "heartbeat_at", "stopped_at")
    readonly_fields = [f.name for f in WorkerHeartbeat._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(PeriodicRun)
class PeriodicRunAdmin(admin.ModelAdmin):
    list_display = ("name", "last_run_at", "last_duration_s", "last_error")
    readonly_fields = [f.name for f in PeriodicRun._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
