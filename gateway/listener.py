"""Where the model gateway listens: one home for its bind addresses.

Containers reach the doce host as `host.docker.internal` (the stack's `extra_hosts:
host-gateway`), which is the host's address on Docker's default bridge. The gateway binds
that address and loopback only — never the public listener's address — on
`DOCE_GATEWAY_PORT`; `DOCE_GATEWAY_BIND` overrides the list.
"""

from __future__ import annotations

from django.conf import settings

from doce.docker.engine import bridge_gateway_address

LOOPBACK = "127.0.0.1"


def gateway_bind_addresses() -> list[str]:
    """The addresses to bind the gateway listener on: `DOCE_GATEWAY_BIND` when set, else the
    Docker bridge's gateway address (asked from the Engine; left out when it does not
    answer) and 127.0.0.1."""
    if settings.DOCE_GATEWAY_BIND:
        return list(dict.fromkeys(settings.DOCE_GATEWAY_BIND))
    bridge = bridge_gateway_address()
    return [LOOPBACK] if bridge is None else list(dict.fromkeys([bridge, LOOPBACK]))


def daphne_endpoints(addresses: list[str], port: int) -> list[str]:
    """daphne `-e` endpoint descriptions for `addresses` on `port` (Twisted's syntax: an
    IPv6 address has its colons escaped)."""
    return [
        f"tcp:port={port}:interface={address.replace(':', chr(92) + ':')}" for address in addresses
    ]
