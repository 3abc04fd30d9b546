from django.contrib import admin

from projects.models import Project


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "id", "owner", "status", "preview_port", "updated_at")
    list_filter = ("status",)
    search_fields = ("id", "name", "owner__username")
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    readonly_fields = ("id", "created_at", "updated_at", "agent_session_id")
    exclude = ("agent_password",)
