"""Readiness probes of a project stack's two services, over their published host ports.

- preview: ready when its dev server gives any HTTP answer (even a 404 or 500: the server
  runs; the page is the agent's business). The probe asks for `/@vite/client`, which a
  Vite-based dev server (Astro's) serves from memory as soon as it listens; `/` would wait
  for the page's first compile (about 1.5 s more). Any other server answers it with a 404,
  which counts just the same;
- agent: ready when OpenCode's `GET /doc` (its OpenAPI document) answers 200 to the
  project's basic-auth credentials (user `opencode`, the project's password).

Reference: https://opencode.ai/docs/server/
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

AGENT_USER = "opencode"
# Short on purpose: OpenCode holds a request that arrives while it is still starting for
# several seconds after it could answer a fresh one, so a patient probe reports it late.
PROBE_TIMEOUT_S = 1.0


def probe_host(bind_address: str) -> str:
    """The address to probe a port published on `bind_address` (wildcards → loopback)."""
    return "127.0.0.1" if bind_address in {"", "0.0.0.0", "::", "[::]"} else bind_address  # noqa: S104


PREVIEW_PROBE_PATH = "/@vite/client"


def preview_ready(host: str, port: int, *, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when the dev server on `host:port` gives any HTTP response within `timeout`
    seconds (to `PREVIEW_PROBE_PATH`)."""
    try:
        httpx.get(f"http://{host}:{port}{PREVIEW_PROBE_PATH}", timeout=timeout)
    except httpx.HTTPError:
        return False
    return True


def agent_ready(host: str, port: int, password: str, *, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when `GET http://<host>:<port>/doc` answers 200 with basic auth `password`
    within `timeout` seconds. `host` is where agents publish their port (the caller passes
    `DOCE_AGENT_HOST`, the address every other call to an agent uses)."""
    try:
        response = httpx.get(
            f"http://{host}:{port}/doc", auth=(AGENT_USER, password), timeout=timeout
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


@dataclass(frozen=True)
class Readiness:
    """Probe results: `preview` and `agent` (bools), and `ready` when both are."""

    preview: bool
    agent: bool

    @property
    def ready(self) -> bool:
        return self.preview and self.agent


def check_ready(
    *,
    preview_host: str,
    preview_port: int,
    agent_host: str,
    agent_port: int,
    agent_password: str,
) -> Readiness:
    """Probe both services once (each at most 1 s)."""
    return Readiness(
        preview=preview_ready(preview_host, preview_port),
        agent=agent_ready(agent_host, agent_port, agent_password),
    )


def wait_ready(
    *,
    preview_host: str,
    preview_port: int,
    agent_host: str,
    agent_port: int,
    agent_password: str,
    timeout: float,
    interval: float = 0.1,
) -> Readiness:
    """Probe until both services are ready or `timeout` seconds pass; returns the last
    `Readiness` (check `.ready`). A service found ready is not probed again."""
    deadline = time.monotonic() + timeout
    preview = agent = False
    while True:
        preview = preview or preview_ready(preview_host, preview_port, timeout=1.0)
        agent = agent or agent_ready(agent_host, agent_port, agent_password, timeout=1.0)
        if (preview and agent) or time.monotonic() >= deadline:
            return Readiness(preview, agent)
        time.sleep(interval)
