"""Strict environment readers for `doce.settings`.

A thin layer over django-environ: every reader returns the default when the variable is
unset or empty, and raises `ImproperlyConfigured` naming the variable when a value is set
but malformed, so a typo stops start-up instead of silently falling back.
"""

from __future__ import annotations

import builtins
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import environ
from django.core.checks.security.base import (
    SECRET_KEY_MIN_LENGTH,
    SECRET_KEY_MIN_UNIQUE_CHARACTERS,
)
from django.core.exceptions import ImproperlyConfigured

from doce.origins import origin_of

# A request waits this long for a pooled Postgres connection before failing (seconds).
POOL_TIMEOUT_S = 30
# Pooled connections idle this long are closed, down to one (seconds).
POOL_MAX_IDLE_S = 300
_SQLITE_OPTIONS = {
    # WAL lets readers run while one writer writes; IMMEDIATE takes the write lock at BEGIN,
    # so two writers queue on the busy timeout instead of failing with "database is locked"
    # when a read transaction tries to upgrade.
    "init_command": (
        "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA foreign_keys=ON;"
        "PRAGMA busy_timeout=20000;"
    ),
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}


class Env:
    """Typed readers over the process environment (and an optional `.env` file).

    `Env(path)` loads `path` if it exists; variables already in the environment win.
    """

    # The readers are named after the types they return (`env.str`, `env.int`), which hides
    # those builtins inside the class: its annotations name them as `builtins.<type>`.

    def __init__(self, dotenv: Path | None = None) -> None:
        self._env = environ.Env()
        if dotenv is not None and dotenv.is_file():
            environ.Env.read_env(str(dotenv), overwrite=False)

    @staticmethod
    def _raw(name: builtins.str) -> builtins.str | None:
        value = os.environ.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def _parse(self, name: builtins.str, default: Any, parse) -> Any:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except (ValueError, TypeError, environ.ImproperlyConfigured) as exc:
            raise ImproperlyConfigured(f"{name} has a malformed value: {exc}") from None

    def str(self, name: builtins.str, default: builtins.str) -> builtins.str:
        """Return the variable as text, or `default` when unset or empty."""
        raw = self._raw(name)
        return default if raw is None else raw

    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        """Accept true/false, yes/no, on/off, 1/0 (any case); anything else is an error."""

        def parse(raw: builtins.str) -> builtins.bool:
            low = raw.lower()
            if low in {"1", "true", "yes", "on"}:
                return True
            if low in {"0", "false", "no", "off"}:
                return False
            raise ValueError(f"expected true or false, got {raw!r}")

        return self._parse(name, default, parse)

    def int(
        self, name: builtins.str, default: builtins.int, *, minimum: builtins.int | None = 0
    ) -> builtins.int:
        """Return a whole number; below `minimum` (default 0) is an error."""

        def parse(raw: builtins.str) -> builtins.int:
            value = int(raw)
            if minimum is not None and value < minimum:
                raise ValueError(f"must be at least {minimum}, got {value}")
            return value

        return self._parse(name, default, parse)

    def float(
        self, name: builtins.str, default: builtins.float, *, minimum: builtins.float = 0.0
    ) -> builtins.float:
        """Return a number; below `minimum` is an error."""

        def parse(raw: builtins.str) -> builtins.float:
            value = float(raw)
            if value < minimum:
                raise ValueError(f"must be at least {minimum}, got {value}")
            return value

        return self._parse(name, default, parse)

    def list(
        self, name: builtins.str, default: Sequence[builtins.str]
    ) -> builtins.list[builtins.str]:
        """Return comma-separated values, blanks dropped."""
        raw = self._raw(name)
        if raw is None:
            return list(default)
        return [item.strip() for item in raw.split(",") if item.strip()]

    def origin(self, name: builtins.str, default: builtins.str) -> builtins.str:
        """Return the variable as a normalized origin (`doce.origins.origin_of`): an http(s)
        URL with no path, e.g. `https://doce.example.org` or `http://localhost:8000`."""

        def parse(raw: builtins.str) -> builtins.str:
            origin = origin_of(raw)
            if origin is None:
                raise ValueError(f"{raw!r} is not an http(s) URL without a path")
            return origin

        return self._parse(name, parse(default), parse)

    def choice(
        self, name: builtins.str, default: builtins.str, choices: Sequence[builtins.str]
    ) -> builtins.str:
        """Return one of `choices` (compared case-insensitively, returned as listed)."""

        def parse(raw: builtins.str) -> builtins.str:
            for choice in choices:
                if raw.lower() == choice.lower():
                    return choice
            raise ValueError(f"expected one of {', '.join(choices)}, got {raw!r}")

        return self._parse(name, default, parse)

    def path(self, name: builtins.str, default: Path, *, base: Path) -> Path:
        """Return an absolute path; a relative value is taken from `base`."""
        raw = self._raw(name)
        path = default if raw is None else Path(raw).expanduser()
        return (base / path).resolve() if not path.is_absolute() else path

    def port_range(
        self, name: builtins.str, default: tuple[builtins.int, builtins.int]
    ) -> tuple[builtins.int, builtins.int]:
        """Parse `LOW-HIGH` (inclusive TCP ports, 1024..65535, LOW <= HIGH)."""

        def parse(raw: builtins.str) -> tuple[builtins.int, builtins.int]:
            low_text, sep, high_text = raw.partition("-")
            if not sep:
                raise ValueError(f"expected LOW-HIGH, got {raw!r}")
            low, high = int(low_text), int(high_text)
            if not (1024 <= low <= high <= 65535):
                raise ValueError(f"expected 1024 <= LOW <= HIGH <= 65535, got {raw!r}")
            return low, high

        return self._parse(name, default, parse)

    def database(
        self, name: builtins.str, default_url: builtins.str, *, pool_size: builtins.int = 0
    ) -> dict[builtins.str, Any]:
        """Parse a database URL (sqlite:///path or postgres://…) into a DATABASES entry.

        SQLite gets WAL, a 20 s busy timeout and IMMEDIATE transactions. Postgres gets no
        persistent connections and, when `pool_size` > 0, a connection pool of at most
        `pool_size` connections per process (`POOL_TIMEOUT_S` to wait for one, idle ones
        beyond the first closed after `POOL_MAX_IDLE_S`).
        """
        raw = self._raw(name) or default_url
        scheme = raw.split(":", 1)[0].lower()
        if scheme not in {"sqlite", "postgres", "postgresql", "pgsql"}:
            raise ImproperlyConfigured(
                f"{name} has a malformed value: unsupported scheme {scheme!r} "
                "(use sqlite:///path or postgres://user:pass@host:port/name)"
            )
        try:
            config = environ.Env.db_url_config(raw)
        except Exception as exc:
            raise ImproperlyConfigured(f"{name} has a malformed value: {exc}") from None
        if not config.get("NAME"):
            raise ImproperlyConfigured(f"{name} has a malformed value: no database name")
        if config["ENGINE"] == "django.db.backends.sqlite3":
            db_path = Path(config["NAME"])
            db_path.parent.mkdir(parents=True, exist_ok=True)
            config["OPTIONS"] = {**_SQLITE_OPTIONS, **config.get("OPTIONS", {})}
            # A file, not :memory:, so tests see the same WAL locking as production and
            # threads/processes in a test share one database.
            config["TEST"] = {"NAME": str(db_path.with_name(f"{db_path.stem}-test.sqlite3"))}
        else:
            # No persistent connections (Django's advice under ASGI): daphne runs each
            # request's sync code in a thread of its own, and a connection kept per thread
            # outlives it; 50 concurrent clients on two web processes used up Postgres's 100
            # connections (the scaled load check, docs/scaling.md).
            config.setdefault("CONN_MAX_AGE", 0)
            config["CONN_HEALTH_CHECKS"] = True
            if pool_size:
                # Django's psycopg pool: a request or job step borrows a connection and gives
                # it back when Django would close it, so a process never holds more than
                # `pool_size` (a request beyond that waits for one instead of failing), and
                # a request does not pay for a new server backend (about 5 ms of connection
                # set-up, much of it Postgres forking, on the 2-core machine).
                config.setdefault("OPTIONS", {})["pool"] = {
                    "min_size": 1,
                    "max_size": pool_size,
                    "timeout": POOL_TIMEOUT_S,
                    "max_idle": POOL_MAX_IDLE_S,
                }
        return config

    def secret_key(
        self, name: builtins.str, keep_file: Path, *, debug: builtins.bool
    ) -> builtins.str:
        """Return the variable, else a key generated once and kept in `keep_file` (mode 0600).

        Outside DEBUG a key shorter than Django's minimum (50 characters, 5 distinct ones;
        the checks of `manage.py check --deploy`) raises `ImproperlyConfigured` naming the
        variable: signed cookies and the derived encryption key are only as strong as it.
        """
        raw = self._raw(name)
        if raw is None:
            return keep_generated(keep_file, lambda: secrets.token_urlsafe(50))
        if not debug and (
            len(raw) < SECRET_KEY_MIN_LENGTH or len(set(raw)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
        ):
            raise ImproperlyConfigured(
                f"{name} is too weak: {len(raw)} characters ({len(set(raw))} distinct); "
                f"outside DEBUG it needs at least {SECRET_KEY_MIN_LENGTH} characters with "
                f"{SECRET_KEY_MIN_UNIQUE_CHARACTERS} distinct ones. Generate one with "
                "`python3 -c 'import secrets; print(secrets.token_urlsafe(50))'`, or unset "
                f"{name} to have doce generate one and keep it in {keep_file}."
            )
        return raw


def keep_generated(keep_file: Path, make: Callable[[], str]) -> str:
    """Return the text kept in `keep_file`, creating it once with `make()` (mode 0600).

    Safe when several doce processes (web, workers) start at once: the first one to create
    the file wins and the others read its value.
    """
    if keep_file.exists():
        return keep_file.read_text().strip()
    value = make()
    try:
        fd = os.open(keep_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another doce process (web or worker) won the race
        return keep_file.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


@dataclass(frozen=True)
class WebSlot:
    """One web process's loopback ports: `port` for doce (behind the edge), `gateway_port`
    for its own model gateway listener (0: the web process binds `DOCE_GATEWAY_PORT` on the
    gateway's addresses itself, the embedded default with one web process)."""

    index: int
    port: int
    gateway_port: int


def web_slots(base_port: int, replicas: int) -> list[WebSlot]:
    """The ports of `replicas` web processes: slot i serves doce on `base_port + i` and, when
    there are several, its gateway listener on `base_port + replicas + i` (one web process
    keeps the gateway on `DOCE_GATEWAY_PORT` itself: gateway_port 0)."""
    if replicas == 1:
        return [WebSlot(0, base_port, 0)]
    return [WebSlot(i, base_port + i, base_port + replicas + i) for i in range(replicas)]


def check_web_ports(slots: Sequence[WebSlot], *, public_port: int, gateway_port: int) -> None:
    """Raise `ImproperlyConfigured` when a web slot's port is out of range or collides with
    another slot's, the edge's (`DOCE_PORT`) or the gateway's (`DOCE_GATEWAY_PORT`)."""
    taken = {public_port: "DOCE_PORT", gateway_port: "DOCE_GATEWAY_PORT"}
    if public_port == gateway_port:
        raise ImproperlyConfigured("DOCE_PORT and DOCE_GATEWAY_PORT must differ")
    for slot in slots:
        for port in (slot.port, slot.gateway_port):
            if port == 0:
                continue
            if not 0 < port < 65536:
                raise ImproperlyConfigured(
                    f"web slot {slot.index} would listen on port {port}: set DOCE_WEB_PORT lower"
                )
            if port in taken:
                raise ImproperlyConfigured(
                    f"web slot {slot.index}'s port {port} is already {taken[port]}'s: "
                    f"set DOCE_WEB_PORT to a free range of {2 * len(slots)} ports"
                )
            taken[port] = f"web slot {slot.index}"
