import csv

from django import forms
from django.contrib import admin
from django.http import HttpResponse
from django.utils import timezone

from accounts.forms import refused_literal_address
from accounts.models import (
    ApiToken,
    Instance,
    Preferences,
    ProviderCredential,
    ProviderKind,
    UsageRecord,
)


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    list_display = ("__str__", "setup_completed_at")
    readonly_fields = ("setup_completed_at",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class InstanceProviderForm(forms.ModelForm):
    """An instance provider: usable by every user, its key never shown (write-only)."""

    new_api_key = forms.CharField(
        label="API key",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Stored encrypted; leave empty to keep the current key.",
    )

    class Meta:
        model = ProviderCredential
        fields = ("kind", "provider_id", "label", "base_url", "model_names", "accepts_images")

    def clean_base_url(self) -> str:
        url = self.cleaned_data.get("base_url", "")
        reason = refused_literal_address(url) if url else ""
        if reason:
            raise forms.ValidationError(f"doce never calls this address: {reason}.")
        return url

    def clean(self):
        data = super().clean() or {}
        if data.get("kind") == ProviderKind.OPENAI_COMPATIBLE and not data.get("base_url"):
            self.add_error("base_url", "An OpenAI-compatible provider needs its base URL.")
        return data

    def save(self, commit: bool = True):
        credential = super().save(commit=False)
        credential.user = None
        if self.cleaned_data.get("new_api_key"):
            credential.api_key = self.cleaned_data["new_api_key"]
        if commit:
            credential.save()
        return credential


class InstanceFilter(admin.SimpleListFilter):
    title = "scope"
    parameter_name = "scope"

    def lookups(self, request, model_admin):
        return [("instance", "Instance providers"), ("user", "Users' providers")]

    def queryset(self, request, queryset):
        if self.value() == "instance":
            return queryset.filter(user__isnull=True)
        if self.value() == "user":
            return queryset.filter(user__isnull=False)
        return queryset


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(admin.ModelAdmin):
    """Operators add and edit instance providers (e.g. "Local Ollama" for everyone) and see
    which providers users configured; no key is ever shown, users' rows are read-only."""

    list_display = ("provider_id", "kind", "user", "masked_key", "updated_at")
    list_filter = (InstanceFilter, "kind")
    search_fields = ("provider_id", "user__username")
    list_select_related = ("user",)
    form = InstanceProviderForm
    _user_fields = (
        "user",
        "kind",
        "provider_id",
        "label",
        "base_url",
        "model_names",
        "accepts_images",
        "masked_key",
    )

    def get_fields(self, request, obj=None):
        if obj is not None and not obj.is_instance:
            return self._user_fields
        return ("kind", "provider_id", "label", "base_url", "model_names", "new_api_key")

    def get_readonly_fields(self, request, obj=None):
        return self._user_fields if obj is not None and not obj.is_instance else ()

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None and not obj.is_instance:
            return False
        return super().has_change_permission(request, obj)


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    """Everyone's model requests through the gateway; filterable, exportable as CSV."""

    list_display = (
        "created_at",
        "user",
        "project_id",
        "provider_id",
        "model",
        "input_tokens",
        "output_tokens",
        "ttfb_ms",
        "total_ms",
        "status",
        "error",
    )
    list_filter = ("provider_id", "status", "instance_provider", "created_at", "user")
    search_fields = ("user__username", "project_id", "model", "provider_id")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    actions = ("export_csv",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Export selected rows as CSV")
    def export_csv(self, request, queryset) -> HttpResponse:
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="doce-usage.csv"'
        writer = csv.writer(response)
        columns = [
            "created_at",
            "user",
            "project_id",
            "provider_id",
            "instance_provider",
            "model",
            "input_tokens",
            "output_tokens",
            "ttfb_ms",
            "total_ms",
            "status",
            "error",
        ]
        writer.writerow(columns)
        for row in queryset.select_related("user").order_by("created_at"):
            values = [getattr(row, name) for name in columns]
            values[1] = row.user.username
            # Cells starting with = + - @ would be formulas in a spreadsheet.
            writer.writerow(
                [f"'{v}" if isinstance(v, str) and v[:1] in "=+-@" else v for v in values]
            )
        return response


@admin.register(Preferences)
class PreferencesAdmin(admin.ModelAdmin):
    """Per-user preferences, including a monthly token budget overriding
    DOCE_GATEWAY_MONTHLY_TOKENS (empty: the default; 0: no limit)."""

    list_display = ("user", "default_model", "monthly_token_budget")
    search_fields = ("user__username",)
    list_select_related = ("user",)
    fields = ("user", "default_model", "monthly_token_budget")

    def get_readonly_fields(self, request, obj=None):
        return ("user", "default_model") if obj is not None else ("default_model",)


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
