"""Caddy's admin API over its unix socket (`DOCE_DATA_DIR/edge/admin.sock`).

Only processes on this machine that can open the socket reach it: no container, no other
host. Used by `doce.edge.sync`, `manage.py edge` and `/healthz`.
"""

from __future__ import annotations

import json

import httpx


class EdgeUnavailable(RuntimeError):
    """Caddy's admin API did not answer (Caddy not running, socket missing)."""


class EdgeRejected(RuntimeError):
    """Caddy answered but refused the request (e.g. an invalid configuration)."""


class AdminClient:
    """A small client of Caddy's admin API. `socket_path`: the unix socket; `timeout`: seconds
    per request."""

    def __init__(self, socket_path: str, timeout: float = 10.0) -> None:
        self.socket_path = socket_path
        self._client = httpx.Client(
            transport=httpx.HTTPTransport(uds=socket_path),
            base_url="http://localhost",
            timeout=timeout,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except (httpx.TransportError, OSError) as exc:
            raise EdgeUnavailable(f"Caddy's admin API is unreachable: {exc}") from None
        if response.status_code >= 400:
            detail = response.text.strip()[:500]
            raise EdgeRejected(f"Caddy refused {method} {path}: {response.status_code} {detail}")
        return response

    def load(self, config: dict) -> None:
        """Replace Caddy's whole configuration with `config` (`POST /load`); Caddy applies it
        atomically, keeping the previous one when the new one fails. Raises
        `EdgeUnavailable` or `EdgeRejected`."""
        self._request(
            "POST",
            "/load",
            content=json.dumps(config).encode(),
            headers={"Content-Type": "application/json"},
        )

    def get_config(self) -> dict | None:
        """Caddy's running configuration (`GET /config/`); None when it has none."""
        data = self._request("GET", "/config/").json()
        return data if isinstance(data, dict) else None

    def ping(self) -> bool:
        """True when the admin API answers."""
        try:
            self._request("GET", "/config/")
        except (EdgeUnavailable, EdgeRejected):
            return False
        return True
