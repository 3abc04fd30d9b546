from django.contrib import admin
from django.utils import timezone

from accounts.models import ApiToken, Instance, ProviderCredential


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    list_display = ("__str__", "setup_completed_at")
    readonly_fields = ("setup_completed_at",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(admin.ModelAdmin):
    """Operators see which providers users configured, never their keys."""

    list_display = ("provider_id", "kind", "user", "masked_key", "updated_at")
    list_filter = ("kind",)
    search_fields = ("provider_id", "user__username")
    list_select_related = ("user",)
    fields = ("user", "kind", "provider_id", "label", "base_url", "model_names", "masked_key")
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "user", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "user__username")
    list_select_related = ("user",)
    readonly_fields = ("user", "name", "prefix", "created_at", "last_used_at")
    exclude = ("digest",)
    actions = ("revoke",)

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} token(s).")
