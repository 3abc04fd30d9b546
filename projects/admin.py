"""Projects in Django admin: operators look, rename, fix a model; lifecycle goes through
`projects.services` like everywhere else.

The status is read-only here (only `services.set_status` writes it, by compare-and-set), a
project is not added here (`services.create_project` starts its chain), and deleting one,
alone or in bulk, runs `services.delete_project`: stack down with its volumes, files removed,
ports freed, then the row (by the `project.delete` job).
"""

from django.contrib import admin

from projects import pool, services
from projects.models import PoolEntry, Project


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "id", "owner", "status", "preview_port", "updated_at")
    list_filter = ("status",)
    search_fields = ("id", "name", "owner__username")
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    readonly_fields = (
        "id",
        "status",
        "status_reason",
        "created_at",
        "updated_at",
        "agent_session_id",
        "stack_name",
        "directory",
    )
    exclude = ("agent_password",)

    def has_add_permission(self, request) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        # Only what the form changed: a full save would write back the status it read.
        if form.changed_data:
            obj.save(update_fields=[*form.changed_data, "updated_at"])

    def delete_model(self, request, obj) -> None:
        services.delete_project(obj)

    def delete_queryset(self, request, queryset) -> None:
        for project in queryset:
            services.delete_project(project)


@admin.register(PoolEntry)
class PoolEntryAdmin(admin.ModelAdmin):
    """The warm pool, read-only: entries come from `pool.fill` and leave by a claim or by
    `pool.discard`; deleting one here discards its stack through that job."""

    list_display = ("id", "state", "preview_port", "agent_port", "fingerprint", "ready_at")
    list_filter = ("state",)
    readonly_fields = (
        "id",
        "state",
        "stack_name",
        "directory",
        "preview_port",
        "agent_port",
        "fingerprint",
        "job_id",
        "created_at",
        "ready_at",
    )
    exclude = ("agent_password",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def delete_model(self, request, obj) -> None:
        pool.discard_entries([obj], "admin")

    def delete_queryset(self, request, queryset) -> None:
        pool.discard_entries(list(queryset), "admin")
