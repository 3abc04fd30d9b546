from django.contrib import admin

from doce.models import Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """The outbox, read-only: for tracing what live UIs were told."""

    list_display = ("id", "topic", "type", "created_at")
    list_filter = ("type",)
    search_fields = ("topic",)
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
