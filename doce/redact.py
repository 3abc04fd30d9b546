"""Secret redaction for log lines, error texts and exports.

`redact_text()` masks secrets that appear inside free text (API keys, bearer tokens,
basic-auth credentials in URLs, `password=` pairs); `redact_mapping()` masks values whose
key names a secret. Both are used by the log pipeline and by every error shown to users.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "[redacted]"

_SECRET_KEY_NAMES = re.compile(
    r"(pass(word|wd)?|secret|token|api[_-]?key|apikey|authorization|cookie|credential|"
    r"private[_-]?key|encryption[_-]?key|sessionid|csrf)",
    re.IGNORECASE,
)

_TEXT_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Provider keys: OpenAI/OpenRouter/Anthropic style (sk-..., sk-or-..., sk-ant-...).
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"), MASK),
    # GitHub, Slack and AWS access keys.
    (re.compile(r"\b(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}"), MASK),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"), MASK),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), MASK),
    # doce's own personal API tokens.
    (re.compile(r"\bdoce_[A-Za-z0-9_\-]{20,}"), MASK),
    # Authorization headers.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}"), r"\1 " + MASK),
    # Credentials inside URLs: scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@]*):[^@\s/]+@"), r"\1:" + MASK + "@"),
    # key=value / key: value pairs whose key names a secret.
    (
        re.compile(
            r"(?i)\b([\w\-]*(?:password|passwd|secret|token|api[_-]?key|apikey)[\w\-]*)"
            r"(\"?\s*[:=]\s*\"?)([^\s\"',;&]+)"
        ),
        r"\1\2" + MASK,
    ),
]


def redact_text(text: str, extra_secrets: tuple[str, ...] = ()) -> str:
    """Return `text` with known secret shapes and each of `extra_secrets` masked."""
    for secret in extra_secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    for pattern, replacement in _TEXT_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def is_secret_key(name: str) -> bool:
    """True when a mapping key's name says its value is a secret."""
    return bool(_SECRET_KEY_NAMES.search(name))


def redact_mapping(data: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of `data` with secret-named values masked and text values scrubbed.

    Nested mappings and lists are walked; other values are kept as they are.
    """
    return {key: _redact_value(key, value) for key, value in data.items()}


def _redact_value(key: str, value: Any) -> Any:
    if is_secret_key(str(key)) and value not in (None, "", False):
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return redact_mapping(value)
    if isinstance(value, list | tuple):
        return [_redact_value("", item) for item in value]
    return value
