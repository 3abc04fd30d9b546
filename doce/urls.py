"""Top-level URL configuration. Apps own their URL modules; they are included here."""

from django.contrib import admin
from django.urls import include, path

from doce import health
from projects.api import api

# The production routes join the same API object.
import productions.api  # noqa: F401  isort: skip

admin.site.site_header = "doce administration"
admin.site.site_title = "doce admin"
admin.site.index_title = "Operate doce"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("queue/", include("jobqueue.urls")),
    path("", include("accounts.urls")),
    path("", include("projects.urls")),
    path("", include("productions.urls")),
]
