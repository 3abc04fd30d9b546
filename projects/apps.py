from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    """Projects: model and lifecycle, job handlers, workspace views and consumers."""

    name = "projects"
    verbose_name = "Projects"
