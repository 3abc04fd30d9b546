"""`manage.py run_worker`: work the job queue until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.management.base import BaseCommand

from jobqueue import outbox
from jobqueue.worker import Worker


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def worker_id(value: str) -> str:
    if not value or len(value) > 200 or not value.isprintable():
        raise argparse.ArgumentTypeError("must be 1..200 printable characters")
    return value


class Command(BaseCommand):
    help = (
        "Run queued jobs. First SIGTERM/SIGINT: stop claiming, give running jobs the grace "
        "period (DOCE_QUEUE_SHUTDOWN_GRACE_SECONDS) to reach a checkpoint, release the rest "
        "back to queued. A second signal exits at once."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--concurrency",
            type=positive_int,
            default=None,
            help="Job threads (default: DOCE_QUEUE_CONCURRENCY).",
        )
        parser.add_argument(
            "--worker-id",
            type=worker_id,
            default=None,
            help="Name of this worker in leases and heartbeats (default: host:pid:random). "
            "Jobs still leased to this id from an earlier run are released at start.",
        )
        parser.add_argument(
            "--once", action="store_true", help="Exit when no job is ready (for cron and tests)."
        )
        parser.add_argument(
            "--max-jobs",
            type=positive_int,
            default=None,
            help="Exit after this many jobs (lets a process manager recycle workers).",
        )
        parser.add_argument(
            "--no-housekeeping",
            action="store_true",
            help="Do not run periodic tasks (reaper, pruning, registered tasks) here.",
        )

    def handle(
        self,
        *,
        concurrency: int | None,
        worker_id: str | None,
        once: bool,
        max_jobs: int | None,
        no_housekeeping: bool,
        **options,
    ) -> None:
        # An in-memory channel layer cannot reach the web process's consumers; they poll.
        wake_consumers = outbox.wake_consumers
        outbox.wake_consumers = not isinstance(get_channel_layer(), InMemoryChannelLayer)
        worker = Worker(
            worker_id=worker_id,
            concurrency=concurrency,
            once=once,
            max_jobs=max_jobs,
            housekeeping=not no_housekeeping,
        )

        def on_signal(signum: int, frame) -> None:
            if worker.stopping.is_set():
                worker.exit_now()
            else:
                worker.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        try:
            worker.run()
        finally:
            outbox.wake_consumers = wake_consumers
        if worker.stragglers or worker.exiting.is_set() or worker.crashed:
            # Handlers that never reached a checkpoint: their leases are released already;
            # don't wait for them. A crashed worker exits 1 so its supervisor restarts it.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1 if worker.exiting.is_set() or worker.crashed else 0)
