from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    """Projects: model and lifecycle, job handlers, workspace views and consumers."""

    name = "projects"
    verbose_name = "Projects"

    def ready(self) -> None:
        from django.conf import settings
        from django.db.models.signals import post_delete, post_save

        from accounts.models import ProviderCredential
        from jobqueue import register_periodic, register_visible_keys
        from projects import housekeeping
        from projects.models import visible_topics
        from projects.services import providers_changed

        # A provider added, edited or removed reaches running agents (opencode.reconfigure).
        post_save.connect(providers_changed, sender=ProviderCredential, dispatch_uid="agents")
        post_delete.connect(providers_changed, sender=ProviderCredential, dispatch_uid="agents")

        # The queue monitor shows a user the jobs of their own projects (serial key = topic).
        register_visible_keys("projects", visible_topics)

        # The edge routes running previews; the worker re-syncs it periodically, so a
        # restarted Caddy (or doce) converges by itself.
        from doce.edge.routes import register_routes
        from projects import edge

        register_routes("projects.previews", edge.preview_routes)
        register_periodic("edge.sync", 15, edge.periodic_sync)
        # Used preview entry tokens can be forgotten once their signature has expired.
        register_periodic("projects.prune_preview_entries", 600, housekeeping.prune_entries)

        # Run by one worker of the deployment at these intervals (seconds).
        register_periodic("projects.reconcile", 30, housekeeping.reconcile_and_restart)
        register_periodic("projects.stop_idle", 30, housekeeping.stop_idle)
        # The warm pool: refilled, and replaced when the template or the images change.
        register_periodic("projects.pool", 30, housekeeping.maintain_pool)
        # What the web process shows of the Docker Engine (it never pings it per request);
        # resumes the steps held during an outage.
        register_periodic(
            "docker.engine_health",
            settings.DOCE_ENGINE_HEALTH_SECONDS,
            housekeeping.record_engine_health,
        )
