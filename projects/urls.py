from django.urls import path, register_converter

from projects import views
from projects.models import PROJECT_ID_PATTERN


class ProjectIdConverter:
    regex = PROJECT_ID_PATTERN

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(ProjectIdConverter, "project_id")

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("projects/new", views.create, name="project-create"),
    # /projects/<id>/
    path("projects/<project_id:project_id>/", views.workspace, name="project-workspace"),
    path(
        "projects/<project_id:project_id>/actions/<slug:name>",
        views.action,
        name="project-action",
    ),
    path("projects/<project_id:project_id>/rename", views.rename, name="project-rename"),
    path("projects/<project_id:project_id>/model", views.change_model, name="project-model"),
    path(
        "projects/<project_id:project_id>/jobs/<int:job_id>/retry",
        views.retry_step,
        name="project-retry-step",
    ),
    path(
        "projects/<project_id:project_id>/preview/enter",
        views.preview_enter,
        name="project-preview-enter",
    ),
    path("projects/<project_id:project_id>/files/", views.file_tree, name="project-files"),
    path("projects/<project_id:project_id>/assets/", views.assets, name="project-assets"),
    path(
        "projects/<project_id:project_id>/assets/upload",
        views.upload_asset,
        name="project-upload-asset",
    ),
    path(
        "projects/<project_id:project_id>/assets/rename",
        views.rename_asset,
        name="project-rename-asset",
    ),
    path(
        "projects/<project_id:project_id>/assets/delete",
        views.delete_asset,
        name="project-delete-asset",
    ),
    path("projects/<project_id:project_id>/export", views.export, name="project-export"),
]
