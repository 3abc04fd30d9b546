"""`manage.py run_worker`: work the job queue until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import sys
from pathlib import Path

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.management.base import BaseCommand, CommandError

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


# Docker bind-mounts each container's own /etc/hostname from its directory on the host
# (`/var/lib/docker/containers/<64 hex>/hostname`): the container's id, readable inside it.
_CONTAINER_MOUNT = re.compile(r"/containers/([0-9a-f]{64})/hostname ")


def container_worker_id(mountinfo: Path = Path("/proc/self/mountinfo")) -> str:
    """`<hostname>:container-<first 12 hex of this container's id>`: a worker id that stays
    the same when Docker restarts the container (its restart policy), so the restarted worker
    releases the jobs its crashed run left leased at once, and that tells the workers of a
    scaled compose deployment apart (with the host's network they share its host name).

    Raises `LookupError` outside a Docker container (no such mount)."""
    try:
        found = _CONTAINER_MOUNT.search(mountinfo.read_text())
    except OSError:
        found = None
    if found is None:
        raise LookupError("not running in a Docker container")
    return f"{socket.gethostname()}:container-{found.group(1)[:12]}"


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
            "--worker-id-from-container",
            action="store_true",
            help="Name this worker after its Docker container (host:container-<id>), the "
            "same across the container's restarts (the scaled compose deployment's workers).",
        )
        parser.add_argument(
            "--beat-file",
            type=Path,
            default=None,
            help="Touch this file after each heartbeat recorded in the database (a container "
            "health check: python -m jobqueue.beat_health FILE).",
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
        worker_id_from_container: bool,
        beat_file: Path | None,
        once: bool,
        max_jobs: int | None,
        no_housekeeping: bool,
        **options,
    ) -> None:
        if worker_id_from_container:
            if worker_id:
                raise CommandError("give --worker-id or --worker-id-from-container, not both")
            try:
                worker_id = container_worker_id()
            except LookupError as exc:
                raise CommandError(f"--worker-id-from-container: {exc}") from None
        # An in-memory channel layer cannot reach the web process's consumers; they poll.
        wake_consumers = outbox.wake_consumers
        outbox.wake_consumers = not isinstance(get_channel_layer(), InMemoryChannelLayer)
        worker = Worker(
            worker_id=worker_id,
            concurrency=concurrency,
            once=once,
            max_jobs=max_jobs,
            housekeeping=not no_housekeeping,
            beat_file=beat_file,
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
