from django.apps import AppConfig


class ProductionsConfig(AppConfig):
    """Production deployments: releases, build/start/stop handlers, rollback, domains."""

    name = "productions"
    verbose_name = "Productions"

    def ready(self) -> None:
        from django.db.models.signals import pre_delete

        from doce.edge.routes import register_routes
        from jobqueue import register_periodic, register_visible_keys
        from productions import lifecycle, routes
        from productions.models import production_key
        from projects.models import Project
        from projects.preview_access import register_host_check

        def visible_keys(user) -> list[str]:
            ids = Project.objects.for_user(user).values_list("pk", flat=True)
            return [production_key(project_id) for project_id in ids]

        # The queue monitor shows a user the production jobs of their own projects.
        register_visible_keys("productions", visible_keys)
        register_periodic("productions.reconcile", 30, lifecycle.reconcile)
        # The edge serves live sites and their domains, and asks before a certificate.
        register_routes("productions.sites", routes.edge_routes)
        register_host_check("productions.sites", routes.serves_host)
        # Deleting a project removes its production (projects never imports productions).
        pre_delete.connect(
            lifecycle.remove_with_project, sender=Project, dispatch_uid="productions.delete"
        )
