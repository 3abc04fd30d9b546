"""The gateway listener in-process: daphne serving `doce.asgi.application` from a thread,
on the addresses `gateway.listener` chooses (the Docker bridge's gateway and loopback), so
real agent containers reach it at `host.docker.internal:<port>` and tests share the test
database with it (use `transactional_db`).

Twisted's reactor runs once per process: `shared_gateway_listener()` starts it on first use
and it serves until the process exits. The port is fixed at that moment; tests point
`DOCE_GATEWAY_PORT` at it (`GatewayListener.port`).
"""

from __future__ import annotations

import socket
import threading
import time

_lock = threading.Lock()
_listener: GatewayListener | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GatewayListener:
    """daphne on `addresses`:`port` in a daemon thread."""

    def __init__(self, addresses: list[str], port: int) -> None:
        self.addresses = addresses
        self.port = port
        self._ready = threading.Event()

    def start(self) -> GatewayListener:
        from daphne.server import Server  # type: ignore[import-untyped]

        from doce.asgi import application
        from gateway.listener import daphne_endpoints

        server = Server(
            application=application,
            endpoints=daphne_endpoints(self.addresses, self.port),
            signal_handlers=False,
            ready_callable=self._ready.set,
            verbosity=0,
        )
        threading.Thread(target=server.run, name="gateway-listener", daemon=True).start()
        if not self._ready.wait(30):
            raise RuntimeError("the gateway listener did not start")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the gateway listener does not accept connections")


def shared_gateway_listener() -> GatewayListener:
    """The process's gateway listener (started on first use on a free port)."""
    global _listener
    from gateway.listener import gateway_bind_addresses

    with _lock:
        if _listener is None:
            _listener = GatewayListener(gateway_bind_addresses(), free_port()).start()
        return _listener
