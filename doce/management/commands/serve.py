"""`manage.py serve`: run doce's embedded default in one command.

Starts the ASGI server (daphne) as a child process, prints the URL, and stops it cleanly on
Ctrl-C / SIGTERM: each child gets one SIGTERM, then SIGKILL after `GRACE_SECONDS` (15 s), or
at once on a second Ctrl-C. Child processes
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
DUPLICATE_SIGNAL_WINDOW = 1.0
# After a second Ctrl-C, how long children get to exit (the worker releases its leases).
FORCED_EXIT_SECONDS = 3.0


class Command(BaseCommand):
    help = "Start doce (web server and background worker) and stop both on Ctrl-C."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=settings.DOCE_HOST, help="Address to bind.")
        parser.add_argument("--port", type=int, default=settings.DOCE_PORT, help="TCP port.")

    def handle(self, *args, host: str, port: int, **options) -> None:
        self.shutdown = False
        self.force = False
        self.first_signal_at = 0.0
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)

        # Own sessions: a terminal's Ctrl-C reaches only this process, which then stops each
        # child exactly once (a worker reads a second signal as "exit now, skip the grace").
        children = [
            subprocess.Popen(argv, start_new_session=True) for argv in self._children(host, port)
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
        now = time.monotonic()
        if self.shutdown:
            # A launcher (make, uv) may forward the same Ctrl-C a moment later: only a signal
            # well after the first is a user's "stop now".
            if now - self.first_signal_at > DUPLICATE_SIGNAL_WINDOW:
                self.force = True
            return
        self.stdout.write(f"{signal.strsignal(signum)}, stopping doce...")
        self.shutdown = True
        self.first_signal_at = now

    def _children(self, host: str, port: int) -> list[list[str]]:
        python = sys.executable
        children = [
            # -v 0: no access log on stdout; RequestContextMiddleware logs each request.
            [
                python,
                "-m",
                "doce.webserver",  # daphne with doce's WebSocket message limit
                "-v",
                "0",
                "-b",
                host,
                "-p",
                str(port),
                "doce.asgi:application",
            ],
        ]
        if settings.DOCE_EMBEDDED_WORKER:
            manage = str(settings.BASE_DIR / "manage.py")
            children.append([python, manage, "run_worker"])
        return children

    def _signal_alive(self, children: list[subprocess.Popen]) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    def _stop(self, children: list[subprocess.Popen]) -> None:
        self._signal_alive(children)
        grace = max(GRACE_SECONDS, settings.DOCE_QUEUE_SHUTDOWN_GRACE_SECONDS + 5)
        deadline = time.monotonic() + grace
        while any(c.poll() is None for c in children) and time.monotonic() < deadline:
            if self.force:  # the user insists: a second signal makes the worker leave at once
                self._signal_alive(children)
                deadline = min(deadline, time.monotonic() + FORCED_EXIT_SECONDS)
                self.force = False
            time.sleep(0.1)
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
