"""An incremental parser of Server-Sent Events (the WHATWG `text/event-stream` format).

`SSEParser.feed(text)` takes decoded text in arbitrary pieces and returns the events
completed by it. Lines end in `\\n`, `\\r\\n` or `\\r`; `data:` lines are joined with `\\n`;
one space after the colon is dropped; comment lines (`:` …) count as liveness only; a blank
line dispatches; an event with no data is not dispatched; a leading BOM is ignored.
Source: the HTML standard, "Server-sent events", parsing an event stream.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event: `event` defaults to `message`; `id`/`retry` as sent, if any."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEParser:
    """Feed decoded text; get whole events back. Keeps the partial line between feeds."""

    def __init__(self) -> None:
        self._buffer = ""
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None
        self._started = False
        self._pending_cr = False
        self.comments = 0

    def feed(self, text: str) -> list[SSEEvent]:
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]  # the \n of a \r\n split across two feeds
        self._pending_cr = False
        self._buffer += text
        events: list[SSEEvent] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                break
            end, width = cut
            line = self._buffer[:end]
            if width == 1 and self._buffer[end] == "\r" and end + 1 == len(self._buffer):
                self._pending_cr = True  # may be the first half of \r\n
            self._buffer = self._buffer[end + width :]
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        data, self._data = self._data, []
        event_type, self._event = self._event or "message", ""
        if not data:
            return None
        return SSEEvent(data="\n".join(data), event=event_type, id=self._id, retry=self._retry)


def _line_end(buffer: str) -> tuple[int, int] | None:
    """Index and width of the first line terminator in `buffer`, or None."""
    n_pos = buffer.find("\n")
    r_pos = buffer.find("\r")
    if r_pos == -1 and n_pos == -1:
        return None
    if r_pos == -1 or (n_pos != -1 and n_pos < r_pos):
        return n_pos, 1
    if r_pos + 1 < len(buffer) and buffer[r_pos + 1] == "\n":
        return r_pos, 2
    return r_pos, 1
