"""`manage.py serve`: run doce's embedded default in one command.

Starts the ASGI server (daphne) as a child process, prints the URL, and stops it cleanly on
Ctrl-C / SIGTERM (children get SIGTERM, then SIGKILL after a grace period). Child processes
are the processes listed by `_children()`; each one is an argument list, never a shell string.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from doce.docker.engine import engine_status

# Longer than the worker's own grace (DOCE_QUEUE_SHUTDOWN_GRACE_SECONDS, 10 s by default),
# so it can release its leases before being killed.
GRACE_SECONDS = 15


class Command(BaseCommand):
    help = "Start doce (web server and background worker) and stop both on Ctrl-C."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=settings.DOCE_HOST, help="Address to bind.")
        parser.add_argument("--port", type=int, default=settings.DOCE_PORT, help="TCP port.")

    def handle(self, *args, host: str, port: int, **options) -> None:
        self.shutdown = False
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)

        children = [
            # The worker gets its own process group: a terminal's Ctrl-C reaches only this
            # command, which then sends the worker one SIGTERM (a graceful stop). A second
            # signal straight from the terminal would make the worker skip its grace period.
            subprocess.Popen(argv, process_group=0 if "run_worker" in argv else None)
            for argv in self._children(host, port)
        ]
        shown_host = "localhost" if host in {"127.0.0.1", "0.0.0.0", "::"} else host  # noqa: S104
        self.stdout.write(self.style.SUCCESS(f"doce is running at http://{shown_host}:{port}/"))
        engine = engine_status()
        if not engine.reachable:
            self.stdout.write(self.style.WARNING(engine.error))

        while not self.shutdown and all(child.poll() is None for child in children):
            time.sleep(0.5)
        self._stop(children)
        failed = [c for c in children if c.returncode not in (0, -signal.SIGTERM, None)]
        if failed and not self.shutdown:
            sys.exit(1)

    def on_signal(self, signum: int, frame) -> None:
        if self.shutdown:  # second signal: leave at once
            sys.exit(130)
        self.stdout.write(f"{signal.strsignal(signum)}, stopping doce...")
        self.shutdown = True

    def _children(self, host: str, port: int) -> list[list[str]]:
        python = sys.executable
        children = [
            [python, "-m", "daphne", "-b", host, "-p", str(port), "doce.asgi:application"],
        ]
        if settings.DOCE_EMBEDDED_WORKER:
            manage = str(settings.BASE_DIR / "manage.py")
            children.append([python, manage, "run_worker"])
        return children

    def _stop(self, children: list[subprocess.Popen]) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        grace = max(GRACE_SECONDS, settings.DOCE_QUEUE_SHUTDOWN_GRACE_SECONDS + 5)
        deadline = time.monotonic() + grace
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
