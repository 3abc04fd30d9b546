"""A background poller for production sites: requests one URL at a fixed interval in a
thread, for as long as a deploy, switch or rollback takes, and keeps every answer.

Used by the crash test (`tests/integration/test_productions.py`) and the browser flow
(`tests/e2e/test_deploy_flow.py`) to show that no request fails across a switch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx


@dataclass(frozen=True)
class Sample:
    """One request: `at` (monotonic seconds when it was sent), `status` (0 for a transport
    error), `label` (what `label` made of the body, e.g. which release answered), `error`
    (the transport error's text), `ms` (round trip)."""

    at: float
    status: int
    label: str
    error: str
    ms: float


@dataclass
class Poller:
    """`GET url` (with `host` as the Host header when set) every `interval` seconds from a
    thread, over one keep-alive client, until stopped; use as a context manager.
    `label(body) -> str` names the answer (default: "")."""

    url: str
    host: str = ""
    interval: float = 0.02
    label: Callable[[str], str] = lambda body: ""
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        headers = {"Host": self.host} if self.host else {}
        with httpx.Client(timeout=5, headers=headers) as client:
            next_at = time.monotonic()
            while not self._stop.is_set():
                sent = time.monotonic()
                status, label, error = 0, "", ""
                try:
                    response = client.get(self.url)
                    status, label = response.status_code, self.label(response.text)
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                ms = (time.monotonic() - sent) * 1000
                self.samples.append(Sample(sent, status, label, error, ms))
                next_at += self.interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    @property
    def failures(self) -> list[Sample]:
        """Requests that did not get a 200 (transport errors included)."""
        return [s for s in self.samples if s.status != 200]

    def labels_in_order(self) -> list[str]:
        """The distinct labels in the order they were first seen, consecutive repeats
        folded: `["one", "two"]` is a clean switch, `["one", "two", "one"]` flapped."""
        folded: list[str] = []
        for sample in self.samples:
            if not folded or folded[-1] != sample.label:
                folded.append(sample.label)
        return folded
