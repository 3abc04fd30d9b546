"""Productions in Django admin: operators look at releases, production states and domains.

Releases and production states are read-only here: a release is immutable (named by its
content), and production states change only through `productions.services` (deploy,
activate, stop; `set_production_status` is the one writer). Domains can be detached here
(the edge stops serving them at its next sync) but are attached by their owners.
"""

from django.contrib import admin

from productions import services
from productions.models import Domain, Production, Release


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Release)
class ReleaseAdmin(ReadOnlyAdmin):
    list_display = (
        "short_id",
        "project",
        "kind",
        "state",
        "size_bytes",
        "deployed_by",
        "created_at",
    )
    list_filter = ("kind", "state")
    search_fields = ("release_id", "project__id", "project__name", "commit")
    list_select_related = ("project", "deployed_by")


@admin.register(Production)
class ProductionAdmin(ReadOnlyAdmin):
    list_display = ("project", "status", "live_release", "updated_at")
    list_filter = ("status",)
    search_fields = ("project__id", "project__name")
    list_select_related = ("project", "live_release")


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "created_at")
    search_fields = ("name", "project__id", "project__name")
    list_select_related = ("project",)
    readonly_fields = ("name", "project", "created_at")

    def has_add_permission(self, request) -> bool:
        return False

    def delete_model(self, request, obj) -> None:
        services.detach_domain(obj.project, obj.name)

    def delete_queryset(self, request, queryset) -> None:
        for domain in queryset:
            services.detach_domain(domain.project, domain.name)
