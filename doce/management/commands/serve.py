"""`manage.py serve`: run doce's embedded default in one command.

Starts three child processes: the ASGI server (daphne, on the loopback port
`DOCE_WEB_PORT`), the edge (Caddy, on `DOCE_HOST:DOCE_PORT`: the one port users open, for
doce and every preview; its admin API on a unix socket in `DOCE_DATA_DIR/edge/`) and the
worker. It prints the URL and stops them cleanly on Ctrl-C / SIGTERM: each child gets one
SIGTERM, then SIGKILL after `GRACE_SECONDS` (15 s), or at once on a second Ctrl-C. Each
child is an argument list, never a shell string.

The web server is the service: when it exits, serve stops. A worker or Caddy that exits on
its own (a crash, a kill) is restarted after a backoff (1 s doubling to
`WORKER_RESTART_MAX_SECONDS`). Caddy starts from the configuration rendered from the
database at that moment (`doce.edge.sync`), so a restarted edge routes every running
preview again. The worker keeps the same worker id (`<hostname>:serve`), so it releases the
jobs its previous run left leased at once instead of waiting for their leases to expire.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from doce.docker.engine import engine_status
from doce.edge import sync as edge_sync
from doce.edge.admin import AdminClient
from doce.edge.binary import CaddyNotFound, caddy_binary
from gateway.listener import daphne_endpoints, gateway_bind_addresses

# Longer than the worker's own grace (DOCE_QUEUE_SHUTDOWN_GRACE_SECONDS, 10 s by default),
# so it can release its leases before being killed.
GRACE_SECONDS = 15
DUPLICATE_SIGNAL_WINDOW = 1.0
# After a second Ctrl-C, how long children get to exit (the worker releases its leases).
FORCED_EXIT_SECONDS = 3.0
# A crashed worker is restarted after 1 s, doubling up to this (seconds); a worker that ran
# this long before exiting starts the backoff over.
WORKER_RESTART_MAX_SECONDS = 30.0


def serve_worker_id() -> str:
    """The worker id of serve's worker slot on this host: `<hostname>:serve`."""
    return f"{socket.gethostname()}:serve"


class WorkerSlot:
    """A child process of serve (the worker, the edge), restarted with a doubling backoff
    when it exits on its own. `name` is how messages call it."""

    def __init__(self, start: Callable[[], subprocess.Popen], name: str = "worker") -> None:
        self._start = start
        self.name = name
        self.process = start()
        self._started = time.monotonic()
        self._backoff = 1.0
        self._restart_at: float | None = None

    def tend(self, say: Callable[[str], object]) -> None:
        """Notice an exit (schedule a restart) or restart when its time has come."""
        now = time.monotonic()
        if self._restart_at is None and self.process.poll() is not None:
            if now - self._started > WORKER_RESTART_MAX_SECONDS:
                self._backoff = 1.0  # it ran a while: this is a new incident
            say(
                f"The {self.name} exited with code {self.process.returncode}; "
                f"restarting it in {self._backoff:.0f} s."
            )
            self._restart_at = now + self._backoff
            self._backoff = min(self._backoff * 2, WORKER_RESTART_MAX_SECONDS)
        elif self._restart_at is not None and now >= self._restart_at:
            self.process = self._start()
            self._started = now
            self._restart_at = None


class Command(BaseCommand):
    help = (
        "Start doce (web server, edge and background worker) and stop them on Ctrl-C. "
        "Addresses come from DOCE_HOST, DOCE_PORT and DOCE_WEB_PORT."
    )

    def handle(self, *args, **options) -> None:
        try:
            self.caddy = caddy_binary()
        except CaddyNotFound as exc:
            raise CommandError(str(exc)) from None
        self.shutdown = False
        self.force = False
        self.first_signal_at = 0.0
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)

        self.gateway_addresses = gateway_bind_addresses()
        web = self._start(self._web_argv())
        edge = WorkerSlot(self._start_edge, "edge (Caddy)")
        worker = None
        if settings.DOCE_EMBEDDED_WORKER:
            worker = WorkerSlot(lambda: self._start(self._worker_argv()))
        self.stdout.write(self.style.SUCCESS(f"doce is running at {settings.DOCE_ORIGIN}/"))
        self.stdout.write(
            f"Model gateway for agents on {', '.join(self.gateway_addresses)} "
            f"port {settings.DOCE_GATEWAY_PORT}."
        )
        engine = engine_status()
        if not engine.reachable:
            self.stdout.write(self.style.WARNING(engine.error))

        while not self.shutdown and web.poll() is None:
            time.sleep(0.5)
            if not self.shutdown:
                edge.tend(self.stderr.write)
            if worker is not None and not self.shutdown:
                worker.tend(self.stderr.write)
        children = [web, edge.process] + ([] if worker is None else [worker.process])
        self._stop(children)
        if web.returncode not in (0, -signal.SIGTERM, None) and not self.shutdown:
            sys.exit(1)

    def _start(self, argv: list[str]) -> subprocess.Popen:
        # Own sessions: a terminal's Ctrl-C reaches only this process, which then stops each
        # child exactly once (a worker reads a second signal as "exit now, skip the grace").
        # DOCE_EDGE_MANAGED: the children know an edge runs (/healthz reports it).
        env = {**os.environ, "DOCE_EDGE_MANAGED": "true"}
        return subprocess.Popen(argv, start_new_session=True, env=env)

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

    def _web_argv(self) -> list[str]:
        # -v 0: no access log on stdout; RequestContextMiddleware logs each request.
        # Loopback only: browsers reach daphne through the edge, whose X-Forwarded-For
        # (`--proxy-headers`) is the client's address (the edge overwrites a client's own).
        # The same daphne also serves the model gateway's own listener (-e: the Docker
        # bridge's gateway address and loopback, see gateway.listener), which containers
        # reach directly, not through the edge; doce.asgi tells them apart by the port.
        gateway = [
            argument
            for endpoint in daphne_endpoints(self.gateway_addresses, settings.DOCE_GATEWAY_PORT)
            for argument in ("-e", endpoint)
        ]
        return [
            sys.executable,
            "-m",
            "doce.webserver",  # daphne with doce's WebSocket message limit
            "-v",
            "0",
            "-b",
            "127.0.0.1",
            "-p",
            str(settings.DOCE_WEB_PORT),
            "--proxy-headers",
            *gateway,
            "doce.asgi:application",
        ]

    def _start_edge(self) -> subprocess.Popen:
        """Start Caddy with the configuration the database calls for now."""
        directory = edge_sync.edge_dir()
        socket_path = edge_sync.admin_socket()
        if os.path.exists(socket_path):
            os.unlink(socket_path)  # a killed Caddy leaves its socket behind
        config_file = directory / "caddy.json"
        config_file.write_text(json.dumps(edge_sync.current_config()))
        config_file.chmod(0o600)
        env = {
            **os.environ,
            "XDG_DATA_HOME": str(directory / "data"),
            "XDG_CONFIG_HOME": str(directory / "config"),
        }
        process = subprocess.Popen(
            [self.caddy, "run", "--config", str(config_file)],
            start_new_session=True,
            env=env,
        )
        # Wait for the admin API, then load once more: what changed while Caddy started.
        deadline = time.monotonic() + 10
        with AdminClient(socket_path, timeout=2.0) as admin:
            while process.poll() is None and time.monotonic() < deadline:
                if admin.ping():
                    try:
                        edge_sync.sync(admin)
                    except Exception as exc:
                        self.stderr.write(f"Could not sync the edge: {exc}")
                    break
                time.sleep(0.05)
        return process

    def _worker_argv(self) -> list[str]:
        manage = str(settings.BASE_DIR / "manage.py")
        # A stable id for this process slot: a restarted worker releases what it left leased.
        return [sys.executable, manage, "run_worker", "--worker-id", serve_worker_id()]

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
