"""A background poller for production sites: requests one URL at a fixed interval in a
thread, for as long as a deploy, switch or rollback takes, and keeps every answer.

Used by the crash test (`tests/integration/test_productions.py`) and the browser flow
(`tests/e2e/test_main_flow.py`) to show that no request fails across a switch. Like a
browser, it sends a GET again once when the edge closed its reused keep-alive connection
before answering (a Caddy config load closes idle connections; `retried` counts those).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx


@dataclass(frozen=True)
class Sample:
    """One page load: `at` (monotonic seconds when it was sent), `status` (0 for a transport
    error; with assets, the first status that was not 200, else 200), `label` (what `label`
    made of the page, e.g. which release answered), `error` (the transport error's text),
    `ms` (round trip of the page), `mixed` (an asset's label differed from the page's)."""

    at: float
    status: int
    label: str
    error: str
    ms: float
    mixed: bool = False


@dataclass
class Poller:
    """`GET url` (with `host` as the Host header when set) every `interval` seconds from a
    thread, over one keep-alive client, until stopped; use as a context manager.
    `label(body) -> str` names the answer (default: ""). With `assets(page) -> [path]`,
    each page load also requests those paths (on the same origin) and compares their
    labels with the page's, as a browser loading the page would."""

    url: str
    host: str = ""
    interval: float = 0.02
    label: Callable[[str], str] = lambda body: ""
    assets: Callable[[str], list[str]] | None = None
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Requests sent again because the edge closed their reused keep-alive connection
        # before answering (see `_get`).
        self.retried = 0
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
                self.samples.append(self._load(client))
                next_at += self.interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _get(self, client: httpx.Client, url) -> httpx.Response:
        """GET once more when the connection was closed before any answer: each edge config
        load makes Caddy close idle keep-alive connections, and browsers send a GET again
        in that case (httpx does not). Counted in `retried`; a second failure raises."""
        try:
            return client.get(url)
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
            self.retried += 1
            return client.get(url)

    def _load(self, client: httpx.Client) -> Sample:
        sent = time.monotonic()
        try:
            response = self._get(client, self.url)
        except httpx.HTTPError as exc:
            return Sample(sent, 0, "", f"{type(exc).__name__}: {exc}", 0)
        ms = (time.monotonic() - sent) * 1000
        status, label, mixed = response.status_code, self.label(response.text), False
        if status != 200 or self.assets is None:
            return Sample(sent, status, label, "", ms)
        for path in self.assets(response.text):
            try:
                asset = self._get(client, httpx.URL(self.url).join(path))
            except httpx.HTTPError as exc:
                return Sample(sent, 0, label, f"{path}: {type(exc).__name__}: {exc}", ms)
            if asset.status_code != 200:
                return Sample(sent, asset.status_code, label, path, ms)
            mixed = mixed or self.label(asset.text) != label
        return Sample(sent, 200, label, "", ms, mixed)

    @property
    def mixed(self) -> list[Sample]:
        """Page loads whose assets came from another release than the page."""
        return [s for s in self.samples if s.mixed]

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
