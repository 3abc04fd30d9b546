"""The Docker Engine client: one place that opens docker SDK connections.

Reference: https://docker-py.readthedocs.io/en/stable/client.html
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import docker
from django.conf import settings
from docker.errors import DockerException

ENGINE_UNREACHABLE = (
    "Docker Engine unreachable: projects cannot start until doce can reach it. "
    "Start the Docker daemon (or set DOCE_DOCKER_HOST) and reload."
)


def engine_client(timeout: float = 30.0) -> docker.DockerClient:
    """Return a docker SDK client for DOCE_DOCKER_HOST (else the SDK's defaults).

    `timeout` is the per-request timeout in seconds (the SDK hands it to requests, which
    takes fractions; its stubs say int). Raises `docker.errors.DockerException`
    when no Engine answers.
    """
    if settings.DOCE_DOCKER_HOST:
        return docker.DockerClient(base_url=settings.DOCE_DOCKER_HOST, timeout=timeout)  # type: ignore[arg-type]
    return docker.from_env(timeout=timeout)  # type: ignore[arg-type]


@dataclass(frozen=True)
class EngineStatus:
    """Whether the Engine answered `/_ping`, its version, and a user-facing error if not."""

    reachable: bool
    version: str = ""
    error: str = ""


def engine_status(timeout: float = 3.0) -> EngineStatus:
    """Ping the Engine within `timeout` seconds. Never raises."""
    try:
        client = engine_client(timeout=timeout)
        try:
            client.ping()
            version = client.version().get("Version", "")
        finally:
            client.close()
    except (DockerException, OSError) as exc:
        del exc  # the SDK's text may carry socket paths; users get the actionable message
        return EngineStatus(reachable=False, error=ENGINE_UNREACHABLE)
    return EngineStatus(reachable=True, version=version)


def bridge_gateway_address(timeout: float = 3.0) -> str | None:
    """The host's address on Docker's default bridge network (`bridge`, usually 172.17.0.1):
    where `host.docker.internal:host-gateway` points inside containers. None when the Engine
    does not answer or the network has no IPv4 gateway."""
    try:
        client = engine_client(timeout=timeout)
        try:
            network = client.api.inspect_network("bridge")
        finally:
            client.close()
    except DockerException:
        return None
    for config in (network.get("IPAM") or {}).get("Config") or []:
        gateway = config.get("Gateway") or ""
        if gateway and ":" not in gateway:
            return gateway
        subnet = config.get("Subnet") or ""
        if subnet and ":" not in subnet:
            # Engines that leave Gateway empty give the bridge the subnet's first address.
            try:
                return str(next(ipaddress.ip_network(subnet, strict=False).hosts()))
            except (ValueError, StopIteration):
                continue
    return None
