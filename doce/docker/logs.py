"""A project's Docker log: `<project>/logs/docker.log`, written by doce, read by byte offset.

Line shapes (one event per line, UTF-8):

- `[host <ISO 8601 UTC time>] <command>` and `[host <time>] exit=<code>`: every command doce
  runs for the project, and its exit code;
- `[docker] <line>`: output of compose commands;
- `[app] <service>: <line>`: output of the project's containers, followed through the docker
  SDK while the stack runs (timestamps and terminal colours stripped).

Writes are appends of whole lines, so the worker's command runner and its log followers can
share the file. Past `DOCE_LOG_MAX_BYTES` the file is renamed to `docker.log.1` (replacing an
older one) and a new file begins; a reader whose offset lies past the new end starts over.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog
from django.conf import settings
from docker.errors import DockerException, NotFound
from requests.exceptions import RequestException

from doce.docker.engine import engine_client

LOG_NAME = "docker.log"
FOLLOW_STATE_NAME = ".app-follow.json"
DEFAULT_READ_BYTES = 65536
# One line is capped so a container printing a huge line can't blow the reader's budget.
MAX_LINE_CHARS = 8192

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_write_locks: dict[Path, threading.Lock] = {}
_write_locks_guard = threading.Lock()
log = structlog.get_logger(__name__)


def host_time() -> str:
    """Now, as `2026-01-31T12:00:00.123Z` (UTC, milliseconds)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def clean_line(text: str) -> str:
    """`text` without terminal escape codes, carriage returns and trailing space, capped."""
    text = _ANSI.sub("", text).replace("\r", "").rstrip()
    if len(text) > MAX_LINE_CHARS:
        text = text[:MAX_LINE_CHARS] + " …[line cut]"
    return text


class DockerLog:
    """Appends marked lines to one project's `docker.log` (created with its folder).

    `path`: the log file; `max_bytes`: rotation size (default `DOCE_LOG_MAX_BYTES`).
    """

    def __init__(self, path: Path, *, max_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes or settings.DOCE_LOG_MAX_BYTES

    @classmethod
    def in_dir(cls, logs_dir: Path) -> DockerLog:
        return cls(Path(logs_dir) / LOG_NAME)

    def host(self, message: str) -> None:
        """Write `[host <time>] message`."""
        self.write([f"[host {host_time()}] {clean_line(message)}"])

    def docker(self, lines: Iterable[str]) -> None:
        """Write each non-blank line as `[docker] line`."""
        self.write([f"[docker] {line}" for line in map(clean_line, lines) if line])

    def app(self, service: str, lines: Iterable[str]) -> None:
        """Write each non-blank line as `[app] service: line`."""
        self.write([f"[app] {service}: {line}" for line in map(clean_line, lines) if line])

    def write(self, lines: list[str]) -> None:
        """Append `lines` (no newlines inside) in one write, rotating first when too big."""
        if not lines:
            return
        data = ("\n".join(lines) + "\n").encode("utf-8", "replace")
        with _lock_for(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._rotate_if_full()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)

    def _rotate_if_full(self) -> None:
        try:
            if self.path.stat().st_size < self.max_bytes:
                return
        except FileNotFoundError:
            return
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))


def _lock_for(path: Path) -> threading.Lock:
    with _write_locks_guard:
        return _write_locks.setdefault(path, threading.Lock())


@dataclass(frozen=True)
class LogChunk:
    """What `read_log` returns; unpacks as `(text, next_offset, truncated)`."""

    text: str
    next_offset: int
    truncated: bool

    def __iter__(self):
        return iter((self.text, self.next_offset, self.truncated))


def read_log(project, offset: int | None = None, max_bytes: int = DEFAULT_READ_BYTES):
    """Read `project`'s docker.log; returns `(text, next_offset, truncated)` (a `LogChunk`).

    `project` is anything with a `logs_dir` (a `Project`) or the logs directory itself.
    Without `offset`: the last `max_bytes` bytes, the first partial line dropped;
    `truncated` says earlier lines were left out. With `offset` (a byte offset from an
    earlier `next_offset`): up to `max_bytes` bytes from there, ending at a line end when
    the chunk is full; `truncated` says more is waiting (read again from `next_offset`).
    An offset past the end of the file means the log was rotated: reading restarts at 0
    and `truncated` is True. A missing file reads as `("", 0, False)`. Memory use is
    bounded by `max_bytes` whatever the file size. Raises `ValueError` for a negative
    offset or a non-positive `max_bytes`.
    """
    if max_bytes <= 0:
        raise ValueError("max_bytes must be positive")
    if offset is not None and offset < 0:
        raise ValueError("offset must not be negative")
    logs_dir = getattr(project, "logs_dir", project)
    path = Path(logs_dir) / LOG_NAME
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return LogChunk("", 0, False)
    with fh:
        size = os.fstat(fh.fileno()).st_size
        if offset is None:
            return _read_tail(fh, size, max_bytes)
        return _read_from(fh, size, offset, max_bytes)


def _read_tail(fh, size: int, max_bytes: int) -> LogChunk:
    start = max(0, size - max_bytes)
    fh.seek(start)
    data = fh.read(size - start)
    truncated = start > 0
    if truncated:
        newline = data.find(b"\n")
        data = data[newline + 1 :] if newline >= 0 else b""
    return LogChunk(data.decode("utf-8", "replace"), size, truncated)


def _read_from(fh, size: int, offset: int, max_bytes: int) -> LogChunk:
    rotated = offset > size
    if rotated:
        offset = 0
    fh.seek(offset)
    data = fh.read(min(max_bytes, size - offset))
    more = offset + len(data) < size
    if more:
        newline = data.rfind(b"\n")
        if newline >= 0:
            data = data[: newline + 1]
    next_offset = offset + len(data)
    return LogChunk(data.decode("utf-8", "replace"), next_offset, more or rotated)


# --- Following container output --------------------------------------------------------------


@dataclass
class _Follower:
    thread: threading.Thread
    stop: threading.Event


_followers: dict[str, _Follower] = {}
_followers_guard = threading.Lock()


def follow_container_logs(container_id: str, service: str, logs_dir: Path) -> bool:
    """Follow one container's output into `logs_dir/docker.log` as `[app]` lines.

    Runs in a daemon thread until the container stops; at most one follower per container
    per process. Resumes after the last line it wrote (kept in `logs/.app-follow.json`), so
    a follower restarted after a worker restart neither repeats nor (while the container
    kept its log) loses lines. Returns True when a new follower was started.
    """
    with _followers_guard:
        current = _followers.get(container_id)
        if current is not None and current.thread.is_alive():
            return False
        stop = threading.Event()
        thread = threading.Thread(
            target=_follow,
            args=(container_id, service, Path(logs_dir), stop),
            name=f"doce-log-{container_id[:12]}",
            daemon=True,
        )
        _followers[container_id] = _Follower(thread, stop)
        thread.start()
        return True


def stop_following(container_ids: Iterable[str]) -> None:
    """Ask the followers of `container_ids` to stop (they end at their next line)."""
    with _followers_guard:
        for container_id in container_ids:
            follower = _followers.pop(container_id, None)
            if follower is not None:
                follower.stop.set()


def is_following(container_id: str) -> bool:
    with _followers_guard:
        follower = _followers.get(container_id)
        return follower is not None and follower.thread.is_alive()


def _follow(container_id: str, service: str, logs_dir: Path, stop: threading.Event) -> None:
    docker_log = DockerLog.in_dir(logs_dir)
    state = _FollowState(logs_dir / FOLLOW_STATE_NAME, container_id)
    try:
        while not stop.is_set():
            finished = _follow_once(container_id, service, docker_log, state, stop)
            if finished:
                break
            stop.wait(1.0)
    except Exception:  # a follower must never take the worker down
        log.exception("log_follower_failed", container=container_id[:12])
    finally:
        state.save()


def _follow_once(container_id, service, docker_log, state, stop) -> bool:
    """Stream until the container stops (True) or the connection drops (False)."""
    try:
        client = engine_client(timeout=300)
    except DockerException:
        return False
    try:
        container = client.containers.get(container_id)
        since = state.since_seconds()
        stream = container.logs(
            stream=True, follow=True, timestamps=True, **({"since": since} if since else {})
        )
        pending = b""
        for chunk in stream:
            pending += chunk
            *complete, pending = pending.split(b"\n")
            _write_app_lines(complete, service, docker_log, state)
            if stop.is_set():
                return True
        if pending:
            _write_app_lines([pending], service, docker_log, state)
        container.reload()
        return container.status != "running"
    except NotFound:
        return True
    except (DockerException, RequestException, OSError):
        return False
    finally:
        client.close()


def _write_app_lines(raw_lines, service, docker_log, state) -> None:
    lines = []
    for raw in raw_lines:
        stamp, _, text = raw.decode("utf-8", "replace").partition(" ")
        key = _stamp_key(stamp)
        if key is None:
            text = raw.decode("utf-8", "replace")
        elif not state.is_new(key):
            continue
        else:
            state.advance(key)
        lines.append(text)
    docker_log.app(service, lines)
    state.save_soon()


def _stamp_key(stamp: str) -> tuple[int, int] | None:
    """`2026-01-31T12:00:00.5Z` → (epoch seconds, nanoseconds); None if not a timestamp."""
    main, _, fraction = stamp.rstrip("Z").partition(".")
    try:
        seconds = int(datetime.fromisoformat(main).replace(tzinfo=UTC).timestamp())
    except ValueError:
        return None
    digits = (fraction + "000000000")[:9]
    return (seconds, int(digits)) if digits.isdigit() else (seconds, 0)


class _FollowState:
    """The last written line's timestamp per container, persisted for a resumed follower."""

    def __init__(self, path: Path, container_id: str) -> None:
        self.path = path
        self.container_id = container_id
        self.last: tuple[int, int] | None = None
        self._saved_at = 0.0
        with contextlib.suppress(OSError, ValueError, TypeError):
            stored = json.loads(path.read_text()).get(container_id)
            if stored:
                self.last = (int(stored[0]), int(stored[1]))

    def since_seconds(self) -> int | None:
        return self.last[0] if self.last else None

    def is_new(self, key: tuple[int, int]) -> bool:
        return self.last is None or key > self.last

    def advance(self, key: tuple[int, int]) -> None:
        self.last = key

    def save_soon(self) -> None:
        if time.monotonic() - self._saved_at > 1.0:
            self.save()

    def save(self) -> None:
        if self.last is None:
            return
        self._saved_at = time.monotonic()
        with _lock_for(self.path):
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                data = {}
            data[self.container_id] = list(self.last)
            tmp = self.path.with_name(self.path.name + ".tmp")
            with contextlib.suppress(OSError):
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_text(json.dumps(data))
                os.replace(tmp, self.path)
