"""daphne with doce's WebSocket message limit: `python -m doce.webserver <daphne arguments>`.

daphne (through autobahn) refuses WebSocket messages over its maximum size, but its server
factory fails such a connection by dropping the TCP connection (`failByDrop`), so a browser
sees 1006 and no reason. Here the limit is `DOCE_WS_MAX_MESSAGE_BYTES` (the same one
`doce.consumers.DoceConsumer` checks) and an oversized message gets a closing handshake with
1009 (RFC 6455 "message too big").
"""

from __future__ import annotations

import os
import sys

# daphne ships no type information.
from daphne.cli import CommandLineInterface as DaphneCommandLine  # type: ignore[import-untyped]
from daphne.server import Server as DaphneServer  # type: ignore[import-untyped]


class Server(DaphneServer):
    """daphne's server whose WebSocket factory closes cleanly instead of dropping."""

    @property
    def ws_factory(self):
        return self._ws_factory

    @ws_factory.setter
    def ws_factory(self, factory) -> None:
        # daphne builds the factory inside run() and sets its own options right after; this
        # one it leaves alone, so it is set as the factory is assigned.
        factory.setProtocolOptions(failByDrop=False)
        self._ws_factory = factory


class CommandLineInterface(DaphneCommandLine):
    server_class = Server


def main(argv: list[str]) -> None:
    """Run daphne with `argv`; doce's message and frame limits come first, so an explicit
    `--websocket-max-message-size` in `argv` still wins."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "doce.settings")
    from django.conf import settings

    limit = str(settings.DOCE_WS_MAX_MESSAGE_BYTES)
    CommandLineInterface().run(
        ["--websocket-max-message-size", limit, "--websocket-max-frame-size", limit, *argv]
    )


if __name__ == "__main__":
    main(sys.argv[1:])
