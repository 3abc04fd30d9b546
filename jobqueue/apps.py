from datetime import timedelta

from django.apps import AppConfig


class JobQueueConfig(AppConfig):
    """The database-backed job queue. Package `jobqueue`, app label `queue`.

    The package is not called `queue`: a top-level `queue` package would shadow Python's
    standard `queue` module (urllib3, and so the docker SDK, import it).

    `ready()` imports every installed app's `jobs` module (registering its handlers, in web
    and worker processes alike), registers the worker's built-in periodic tasks (lease reaper,
    pruning) and the `worker` check of `/healthz`.
    """

    name = "jobqueue"
    label = "queue"
    verbose_name = "Queue"

    def ready(self) -> None:
        from django.conf import settings

        from doce import events
        from doce.health import register_check
        from jobqueue import health, periodic, registry, services

        registry.autodiscover()
        periodic.register_periodic(
            "queue.reap", settings.DOCE_QUEUE_REAP_SECONDS, services.reap_expired_leases
        )
        periodic.register_periodic(
            "queue.prune",
            3600,
            lambda: services.prune_finished_jobs(
                timedelta(days=settings.DOCE_QUEUE_PRUNE_AFTER_DAYS)
            ),
        )
        # The outbox only serves live pages resuming after a reconnect: old events go.
        periodic.register_periodic(
            "events.prune",
            600,
            lambda: events.prune_events(timedelta(hours=settings.DOCE_EVENTS_PRUNE_AFTER_HOURS)),
        )
        register_check("worker", health.check_worker)
