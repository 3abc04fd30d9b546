from django.apps import AppConfig


class JobQueueConfig(AppConfig):
    """The database-backed job queue. Package `jobqueue`, app label `queue`.

    The package is not called `queue`: a top-level `queue` package would shadow Python's
    standard `queue` module (urllib3, and so the docker SDK, import it).
    """

    name = "jobqueue"
    label = "queue"
    verbose_name = "Queue"
