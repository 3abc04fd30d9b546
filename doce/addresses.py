"""Which network addresses doce may call on a user's behalf (model providers), after DNS.

The model gateway and the provider test in Settings call URLs that users typed, from the
doce host. `check_address` is the one rule against server-side request forgery:

- always refused: link-local and cloud metadata addresses (169.254.0.0/16 — AWS, GCP and
  Azure metadata at 169.254.169.254 —, fe80::/10, fd00:ec2::254, Alibaba's 100.100.100.200),
  "this network" (0.0.0.0/8, ::), multicast and reserved ranges, and the IPv4-mapped and
  NAT64 forms of all of them;
- loopback (127.0.0.0/8, ::1) and private ranges (10/8, 172.16/12, 192.168/16, 100.64/10,
  fc00::/7) only when the caller allows private addresses (instance providers, staff, or
  `DOCE_GATEWAY_ALLOW_PRIVATE`);
- everything else (public unicast) is allowed.

`resolve_allowed(host, port, allow_private=...)` resolves a name and checks every address it
resolves to (a name with one refused address is refused: no DNS-rebinding games); callers
then connect to the returned address itself, so what was checked is what is used.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_ALWAYS_REFUSED = [
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "169.254.0.0/16",
        "100.100.100.200/32",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "fe80::/10",
        "fd00:ec2::254/128",
        "ff00::/8",
    )
]
_PRIVATE = [
    ipaddress.ip_network(net)
    for net in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "198.18.0.0/15",
        "::1/128",
        "fc00::/7",
    )
]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressRefused(Exception):
    """The address (or a name's resolved address) may not be called. `reason` is plain
    words for a user: which address and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ResolutionFailed(Exception):
    """The name did not resolve (`reason`: plain words)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Resolved:
    """A checked address of `host`: connect to `address` (text form), send `host` as the
    Host header and TLS server name."""

    host: str
    address: str
    port: int

    @property
    def url_host(self) -> str:
        """The address as a URL's host part (IPv6 in brackets)."""
        return f"[{self.address}]" if ":" in self.address else self.address


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def check_address(address: IPAddress | str, *, allow_private: bool) -> None:
    """Raise `AddressRefused` unless doce may connect to `address` (see the module docs)."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if getattr(ip, "scope_id", None):
        raise AddressRefused(f"{ip} has a zone index; use a plain address")
    candidates: list[IPAddress] = [ip]
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        candidates.append(embedded)
    for candidate in candidates:
        if any(candidate in net for net in _ALWAYS_REFUSED if net.version == candidate.version):
            raise AddressRefused(
                f"{ip} is a link-local, metadata or reserved address; doce never calls it"
            )
    for candidate in candidates:
        if any(candidate in net for net in _PRIVATE if net.version == candidate.version):
            if not allow_private:
                raise AddressRefused(
                    f"{ip} is a loopback or private address; only instance providers and "
                    "administrators may use one (or set DOCE_GATEWAY_ALLOW_PRIVATE=true)"
                )
            return


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _pick(host: str, port: int, infos: list, allow_private: bool) -> Resolved:
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise ResolutionFailed(f"{host} did not resolve to any address")
    for address in addresses:  # every address must pass: the connection may use any
        try:
            check_address(address, allow_private=allow_private)
        except AddressRefused as exc:
            if address == host.strip("[]"):
                raise
            raise AddressRefused(f"{host} resolves to {exc.reason}") from None
    return Resolved(host=host, address=addresses[0], port=port)


def resolve_allowed(host: str, port: int, *, allow_private: bool) -> Resolved:
    """Resolve `host` (name or literal) and check every address; return the first one.

    Raises `AddressRefused` or `ResolutionFailed`. Blocking (DNS): use
    `aresolve_allowed` from async code.
    """
    literal = _literal(host)
    if literal is not None:
        check_address(literal, allow_private=allow_private)
        return Resolved(host=host, address=str(literal), port=port)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ResolutionFailed(f"{host} does not resolve ({exc})") from None
    return _pick(host, port, infos, allow_private)


async def aresolve_allowed(host: str, port: int, *, allow_private: bool) -> Resolved:
    """`resolve_allowed` for async code (the resolver runs in the loop's executor)."""
    literal = _literal(host)
    if literal is not None:
        check_address(literal, allow_private=allow_private)
        return Resolved(host=host, address=str(literal), port=port)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ResolutionFailed(f"{host} does not resolve ({exc})") from None
    return _pick(host, port, infos, allow_private)
