"""Token usage read from a provider's response as it streams past, without buffering it.

`UsageMeter.feed(chunk)` takes the response bytes in whatever pieces they arrive; `usage()`
returns `(input_tokens, output_tokens)`, each None when the server reported none.

- OpenAI-style streams (OpenAI, OpenRouter, compatible servers): the chunk whose `usage` is
  an object (`prompt_tokens`, `completion_tokens`), sent when the request asked for
  `stream_options.include_usage` (the gateway adds it).
- Anthropic streams: `message_start.message.usage.input_tokens` and the cumulative
  `message_delta.usage.output_tokens` (the last one wins); cache reads/writes count as input.
- A plain JSON answer (`stream: false`): its top-level `usage`, either shape.

Only SSE lines that mention `"usage"` are parsed, so a long stream costs a byte search per
line. A plain JSON body is kept up to `MAX_JSON_BYTES` to read its usage at the end.
"""

from __future__ import annotations

import json
from typing import Any

MAX_JSON_BYTES = 8 * 1024 * 1024
MAX_LINE_BYTES = 1024 * 1024


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class UsageMeter:
    """Reads token counts from a response body fed to it in pieces (see module docs)."""

    def __init__(self, *, streaming: bool) -> None:
        self.streaming = streaming
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self._pending = b""
        self._body = bytearray()
        self._overflow = False

    def feed(self, chunk: bytes) -> None:
        """Take the next piece of the response body."""
        if not self.streaming:
            if not self._overflow:
                self._body += chunk
                if len(self._body) > MAX_JSON_BYTES:
                    self._overflow = True
                    self._body = bytearray()
            return
        data = self._pending + chunk if self._pending else chunk
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            self._line(data[start:end])
            start = end + 1
        rest = data[start:]
        self._pending = rest if len(rest) <= MAX_LINE_BYTES else b""

    def _line(self, line: bytes) -> None:
        if b'"usage"' not in line:
            return
        line = line.strip()
        if not line.startswith(b"data:"):
            return
        try:
            event = json.loads(line[5:])
        except ValueError:
            return
        if isinstance(event, dict):
            self._event(event)

    def _event(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "message_start":  # Anthropic
            message = event.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            self._anthropic(usage)
        elif kind == "message_delta":
            self._anthropic(event.get("usage"))
        else:
            self._openai(event.get("usage"))

    def _anthropic(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        parts = [
            _int(usage.get(name))
            for name in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
        ]
        if any(part is not None for part in parts):
            self.input_tokens = sum(part or 0 for part in parts)
        output = _int(usage.get("output_tokens"))
        if output is not None:
            self.output_tokens = output

    def _openai(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        prompt = _int(usage.get("prompt_tokens"))
        completion = _int(usage.get("completion_tokens"))
        if prompt is not None:
            self.input_tokens = prompt
        if completion is not None:
            self.output_tokens = completion

    def usage(self) -> tuple[int | None, int | None]:
        """`(input_tokens, output_tokens)` so far (a plain JSON body is parsed here)."""
        if self.streaming:
            if self._pending:
                self._line(self._pending)
                self._pending = b""
        elif self._body and not self._overflow:
            try:
                body = json.loads(bytes(self._body))
            except ValueError:
                body = None
            self._body = bytearray()
            if isinstance(body, dict):
                usage = body.get("usage")
                if isinstance(usage, dict) and "input_tokens" in usage:
                    self._anthropic(usage)
                else:
                    self._openai(usage)
        return self.input_tokens, self.output_tokens
