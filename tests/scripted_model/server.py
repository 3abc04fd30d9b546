"""An OpenAI-compatible HTTP server that plays scripts (see `tests.scripted_model.scripts`).

Endpoints (the subset of the OpenAI API that `@ai-sdk/openai-compatible` uses):

- `GET /v1/models` → `{"object": "list", "data": [{"id": <model>, "object": "model"}]}`
- `POST /v1/chat/completions` with `stream: true` → `text/event-stream` of
  `chat.completion.chunk` objects, ending with a usage chunk and `data: [DONE]`.
  With `stream: false` the same turn is answered as one `chat.completion` object.

It is a stdlib threading HTTP server: one thread per request, so a slow stream never blocks
another test's request. Every request body is kept in `ScriptedModelServer.requests`, every
`Authorization` header it got in `.keys_seen`; with `required_key` set, a request without
`Bearer <required_key>` gets an OpenAI-style 401. `.aborted` counts streams whose client went
away before the end (a proxy that cancels upstream on disconnect makes it grow).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.scripted_model.scripts import SCRIPTS, Context, Script, Turn, split_marker

MODEL_ID = "scripted"
PROVIDER_ID = "scripted"


class ScriptedModelServer:
    """The scripted model, served on `host:port` (port 0 picks a free one).

    `start()` serves from a daemon thread and returns self; `stop()` shuts it down.
    `base_url` is `http://<host>:<port>/v1` (use a host the agent can reach).
    `scripts` maps names to scripts; add your own before a test sends its prompt.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        default_script: str = "default",
        required_key: str | None = None,
    ):
        self.required_key = required_key
        self.keys_seen: list[str] = []
        self.aborted = 0
        self.usage_reported: list[dict[str, int]] = []
        self.scripts: dict[str, Script] = {name: list(turns) for name, turns in SCRIPTS.items()}
        if default_script not in self.scripts:
            raise ValueError(f"unknown script {default_script!r}")
        self.default_script = default_script
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return self._httpd.server_address[0]

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> ScriptedModelServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="scripted-model", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def usage_for(self, body: dict[str, Any], pieces: int) -> dict[str, int]:
        """The usage this server reports for a request (kept in `.usage_reported`): input
        tokens from the size of its messages, output tokens from what was sent."""
        prompt = max(1, len(json.dumps(body.get("messages") or [])) // 4)
        usage = {"prompt_tokens": prompt, "completion_tokens": pieces, "total_tokens": 0}
        usage["total_tokens"] = prompt + pieces
        with self._lock:
            self.usage_reported.append(usage)
        return usage

    def record(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(body)

    def choose_turn(self, body: dict[str, Any]) -> tuple[Turn, Context]:
        """Return the turn answering `body` and the context its strings are filled from."""
        messages = body.get("messages") or []
        last_user = max(
            (i for i, message in enumerate(messages) if message.get("role") == "user"),
            default=-1,
        )
        user_text = _text_of(messages[last_user]) if last_user >= 0 else ""
        name, prompt = split_marker(user_text)
        context = Context(prompt)
        if not body.get("tools"):
            return _side_answer(messages, context), context
        script = self.scripts.get(name or self.default_script)
        if script is None:
            return [{"type": "text", "text": f"Unknown script {name!r}."}], context
        turn_index = sum(1 for m in messages[last_user + 1 :] if m.get("role") == "assistant")
        if turn_index < len(script):
            return script[turn_index], context
        return [{"type": "text", "text": "Done."}], context


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content if isinstance(part, dict)).strip()
    return ""


def _side_answer(messages: list[dict[str, Any]], context: Context) -> Turn:
    system = " ".join(_text_of(m) for m in messages if m.get("role") == "system").lower()
    if "title" in system:
        return [{"type": "text", "text": context.heading[:48] or "Scripted session"}]
    return [{"type": "text", "text": f"Summary: the user asked about {context.prompt[:80]}."}]


def _handler_for(server: ScriptedModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        scripted = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    scripted: ScriptedModelServer
    server_version = "scripted-model/1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet under pytest
        pass

    def _authorized(self) -> bool:
        auth = self.headers.get("authorization") or ""
        with self.scripted._lock:
            self.scripted.keys_seen.append(auth)
        required = self.scripted.required_key
        if required is not None and auth != f"Bearer {required}":
            self._json(
                401,
                {"error": {"message": "Incorrect API key provided", "type": "invalid_api_key"}},
            )
            return False
        return True

    def do_GET(self) -> None:
        if not self._authorized():
            return
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self._json(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model"}]})
        else:
            self._json(404, {"error": {"message": "not found", "type": "not_found"}})

    def do_POST(self) -> None:
        if not self._authorized():
            return
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._json(404, {"error": {"message": "not found", "type": "not_found"}})
            return
        try:
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, OSError):
            self._json(400, {"error": {"message": "body is not JSON", "type": "invalid_request"}})
            return
        self.scripted.record(body)
        turn, context = self.scripted.choose_turn(body)
        turn = context.fill(turn)
        errors = [step for step in turn if step.get("type") == "error"]
        if errors:
            error = errors[0]
            self._json(
                int(error.get("status", 500)),
                {
                    "error": {
                        "message": error.get("message", "scripted error"),
                        "type": error.get("code", "server_error"),
                        "code": error.get("code", "server_error"),
                    }
                },
            )
            return
        try:
            if body.get("stream"):
                self._stream(body, turn)
            else:
                self._complete(body, turn)
        except (BrokenPipeError, ConnectionResetError):
            with self.scripted._lock:  # the client aborted: exactly what abort tests do
                self.scripted.aborted += 1

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, body: dict[str, Any], turn: Turn) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        chunk_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        model = body.get("model", MODEL_ID)

        sent = [0]

        def send(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> None:
            sent[0] += 1
            chunk = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra,
            }
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            self.wfile.flush()

        send({"role": "assistant", "content": ""})
        tool_index = 0
        for step in turn:
            kind = step.get("type")
            if kind in ("text", "reasoning"):
                field = "content" if kind == "text" else "reasoning_content"
                for piece in _pieces(step["text"], int(step.get("chunk", 12))):
                    send({field: piece})
                    if step.get("delay"):
                        time.sleep(float(step["delay"]))
            elif kind == "tool":
                call = {
                    "index": tool_index,
                    "id": f"call_{uuid.uuid4().hex[:12]}",
                    "type": "function",
                    "function": {
                        "name": step["name"],
                        "arguments": json.dumps(step.get("arguments", {})),
                    },
                }
                send({"tool_calls": [call]})
                tool_index += 1
            elif kind == "sleep":
                time.sleep(float(step.get("seconds", 1)))
        usage = self.scripted.usage_for(body, sent[0])
        send({}, "tool_calls" if tool_index else "stop", usage=usage)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _complete(self, body: dict[str, Any], turn: Turn) -> None:
        text = "".join(step["text"] for step in turn if step.get("type") == "text")
        self._json(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", MODEL_ID),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": self.scripted.usage_for(body, len(text)),
            },
        )


def _pieces(text: str, size: int) -> list[str]:
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
