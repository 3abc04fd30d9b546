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
    # /projects/<id>/
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
