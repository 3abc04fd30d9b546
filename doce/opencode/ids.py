"""OpenCode-shaped ascending ids, so doce can name a message before sending it.

OpenCode 1.18's message ids are `msg_` + 12 hex digits + 14 base62 characters; the hex is
the low 48 bits of `epoch_ms * 0x1000 + counter`, so ids sort by creation time. Its prompt
loop compares a user message's id with its replies' ids: an id of this shape, made before
the send, sorts before the agent's answer as it must. A fixed id per prompt makes a resend
detectable (`GET /session/{id}/message/{messageID}`).
"""

from __future__ import annotations

import secrets
import threading
import time

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_RANDOM_CHARS = 14
_lock = threading.Lock()
_last_ms = 0
_counter = 0

MESSAGE_ID_PATTERN = r"^msg_[0-9a-f]{12}[0-9A-Za-z]{14}$"


def ascending_message_id(now_ms: int | None = None) -> str:
    """A new `msg_…` id that sorts after every id made earlier (in this process, and by an
    OpenCode server whose clock agrees)."""
    global _last_ms, _counter
    with _lock:
        ms = int(time.time() * 1000) if now_ms is None else now_ms
        if ms != _last_ms:
            _last_ms, _counter = ms, 0
        _counter += 1
        stamp = (ms * 0x1000 + _counter) & ((1 << 48) - 1)
    tail = "".join(secrets.choice(_BASE62) for _ in range(_RANDOM_CHARS))
    return f"msg_{stamp:012x}{tail}"
