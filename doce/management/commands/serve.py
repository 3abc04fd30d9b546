"""`manage.py serve`: run doce in one command.

Starts the child processes: the ASGI server (daphne, on the loopback port `DOCE_WEB_PORT`),
the edge (Caddy, on `DOCE_HOST:DOCE_PORT`: the one port users open, for doce and every
preview; its admin API on a unix socket in `DOCE_DATA_DIR/edge/`) and the worker. It prints
the URL and stops them cleanly on Ctrl-C / SIGTERM: each child gets one SIGTERM, then
SIGKILL after `GRACE_SECONDS` (15 s), or at once on a second Ctrl-C. Each child is an
argument list, never a shell string.

Scaled out on one host: `DOCE_WEB_REPLICAS` web processes (one per web slot, see
`doce.config.web_slots`; the edge load-balances them and fronts their model gateway
listeners) and `DOCE_WORKER_REPLICAS` workers. `--only web` runs a single web slot (the
first free one, claimed with a file lock, or `--slot N`) and `--only edge` the edge alone:
what the scaled compose file's containers run.

With one web process the web server is the service: when it exits, serve stops. With
several, and for every worker and Caddy, a child that exits on its own (a crash, a kill) is
restarted after a backoff (1 s doubling to `WORKER_RESTART_MAX_SECONDS`). Caddy starts from
the configuration rendered from the database at that moment (`doce.edge.sync`), so a
restarted edge routes every running preview again. Each worker keeps its worker id
(`<hostname>:serve`, `<hostname>:serve-2`, ...), so it releases the jobs its previous run
left leased at once instead of waiting for their leases to expire.
"""

from __future__ import annotations

import fcntl
import functools
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

from doce.config import WebSlot
from doce.docker.engine import bridge_gateway_address, engine_status
from doce.edge import sync as edge_sync
from doce.edge.admin import AdminClient
from doce.edge.binary import CaddyNotFound, caddy_binary
from doce.webslot_health import WEB_PORT_FILE
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


def serve_worker_id(index: int = 0) -> str:
    """The worker id of serve's worker `index` (from 0) on this host: `<hostname>:serve`,
    then `<hostname>:serve-2`, `<hostname>:serve-3`, ..."""
    suffix = "" if index == 0 else f"-{index + 1}"
    return f"{socket.gethostname()}:serve{suffix}"


class SlotTaken(Exception):
    """Every web slot is held by another running web process."""


def claim_web_slot(wanted: int | None = None) -> tuple[WebSlot, int]:
    """Claim a web slot for this process: `wanted` (an index) or the first free one. Returns
    the slot and the file descriptor whose lock (`DOCE_DATA_DIR/run/web-slot-<i>.lock`)
    holds it until the process exits. Raises `SlotTaken` when the slot (or every slot) is
    held, `CommandError` for an index out of range."""
    slots = settings.DOCE_WEB_SLOTS
    if wanted is not None and not 0 <= wanted < len(slots):
        raise CommandError(f"--slot must be 0..{len(slots) - 1} (DOCE_WEB_REPLICAS={len(slots)})")
    directory = settings.DATA_DIR / "run"
    directory.mkdir(parents=True, exist_ok=True)
    for slot in slots if wanted is None else [slots[wanted]]:
        fd = os.open(directory / f"web-slot-{slot.index}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return slot, fd
    raise SlotTaken("every web slot is taken (raise DOCE_WEB_REPLICAS)")


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
        "Start doce (edge, web servers and background workers) and stop them on Ctrl-C. "
        "Addresses come from DOCE_HOST, DOCE_PORT and DOCE_WEB_PORT; how many web processes "
        "and workers from DOCE_WEB_REPLICAS and DOCE_WORKER_REPLICAS."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--only",
            choices=["web", "edge"],
            help="Run one web slot (web) or the edge alone (edge), e.g. one per container.",
        )
        parser.add_argument(
            "--slot", type=int, help="With --only web: this web slot (default: the first free)."
        )

    def handle(self, *args, only: str | None = None, slot: int | None = None, **options) -> None:
        self.shutdown = False
        self.force = False
        self.first_signal_at = 0.0
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        self.gateway_addresses = (
            list(settings.DOCE_GATEWAY_BIND)
            if settings.DOCE_GATEWAY_UPSTREAMS
            else gateway_bind_addresses()
        )
        if only == "web":
            try:
                claimed, _lock = claim_web_slot(slot)
            except SlotTaken as exc:
                raise CommandError(str(exc)) from None
            # For a container's health check (`python -m doce.webslot_health`).
            WEB_PORT_FILE.write_text(str(claimed.port))
            self.stdout.write(f"Web slot {claimed.index} on 127.0.0.1:{claimed.port}.")
            self._run([WorkerSlot(functools.partial(self._start_web, claimed), "web")])
            return
        try:
            self.caddy = caddy_binary()
        except CaddyNotFound as exc:
            raise CommandError(str(exc)) from None
        if only == "edge":
            self._run([WorkerSlot(self._start_edge, "edge (Caddy)")])
            return

        slots = settings.DOCE_WEB_SLOTS
        webs = [
            WorkerSlot(functools.partial(self._start_web, s), f"web process {s.index}")
            for s in slots
        ]
        children = [*webs, WorkerSlot(self._start_edge, "edge (Caddy)")]
        if settings.DOCE_EMBEDDED_WORKER:
            children += [
                WorkerSlot(functools.partial(self._start_worker, i), f"worker {i}")
                for i in range(settings.DOCE_WORKER_REPLICAS)
            ]
        self.stdout.write(self.style.SUCCESS(f"doce is running at {settings.DOCE_ORIGIN}/"))
        self.stdout.write(
            f"Model gateway for agents on {', '.join(self.gateway_addresses)} "
            f"port {settings.DOCE_GATEWAY_PORT}."
        )
        if len(slots) > 1 or settings.DOCE_WORKER_REPLICAS > 1:
            workers = settings.DOCE_WORKER_REPLICAS if settings.DOCE_EMBEDDED_WORKER else 0
            self.stdout.write(f"{len(slots)} web processes and {workers} workers.")
        engine = engine_status()
        if not engine.reachable:
            self.stdout.write(self.style.WARNING(engine.error))
        elif settings.DOCE_GATEWAY_UPSTREAMS:
            bridge = bridge_gateway_address()
            if bridge and bridge not in settings.DOCE_GATEWAY_BIND:
                self.stdout.write(
                    self.style.WARNING(
                        f"Agents reach this host at {bridge}, which DOCE_GATEWAY_BIND leaves "
                        "out: their model calls will fail."
                    )
                )
        # One web process is the service: serve ends with it. Several are tended like the rest.
        self._run(children, service=webs[0].process if len(webs) == 1 else None)

    def _run(self, children: list[WorkerSlot], service: subprocess.Popen | None = None) -> None:
        """Tend `children` until a signal (or `service` exits), then stop them all."""
        while not self.shutdown and (service is None or service.poll() is None):
            time.sleep(0.5)
            for child in children:
                if self.shutdown or child.process is service:
                    continue
                child.tend(self.stderr.write)
        self._stop([child.process for child in children])
        failed = service is not None and service.returncode not in (0, -signal.SIGTERM, None)
        if failed and not self.shutdown:
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

    def _start_web(self, slot: WebSlot) -> subprocess.Popen:
        return self._start(self._web_argv(slot))

    def _start_worker(self, index: int) -> subprocess.Popen:
        return self._start(self._worker_argv(index))

    def _web_argv(self, slot: WebSlot) -> list[str]:
        # -v 0: no access log on stdout; RequestContextMiddleware logs each request.
        # Loopback only: browsers reach daphne through the edge, whose X-Forwarded-For
        # (`--proxy-headers`) is the client's address (the edge overwrites a client's own).
        # The same daphne also serves the model gateway's own listener (-e: the Docker
        # bridge's gateway address and loopback, see gateway.listener), which containers
        # reach directly, not through the edge; doce.asgi tells them apart by the port. With
        # several web processes each has a loopback gateway port of its own, and the edge
        # listens on the gateway's addresses for all of them.
        if slot.gateway_port:
            endpoints = daphne_endpoints(["127.0.0.1"], slot.gateway_port)
        else:
            endpoints = daphne_endpoints(self.gateway_addresses, settings.DOCE_GATEWAY_PORT)
        gateway = [argument for endpoint in endpoints for argument in ("-e", endpoint)]
        return [
            sys.executable,
            "-m",
            "doce.webserver",  # daphne with doce's WebSocket message limit
            "-v",
            "0",
            "-b",
            "127.0.0.1",
            "-p",
            str(slot.port),
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

    def _worker_argv(self, index: int = 0) -> list[str]:
        manage = str(settings.BASE_DIR / "manage.py")
        # A stable id for this process slot: a restarted worker releases what it left leased.
        return [sys.executable, manage, "run_worker", "--worker-id", serve_worker_id(index)]

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
