"""Errors of the OpenCode agent, classified into diagnostics a user can act on.

Every failure talking to an agent (HTTP status, transport error, or an error object OpenCode
reports on `/event` or in a message) becomes a `Diagnostic` with one of five categories:
`auth`, `provider_model`, `runtime_unreachable`, `timeout`, `unknown`. Each has a title, a
user message, remediation steps and a `retryable` flag. Every text is passed through
`doce.redact.redact_text` (plus the agent password), so no secret reaches a log or a browser.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field

from doce.redact import redact_text

Category = Literal["auth", "provider_model", "runtime_unreachable", "timeout", "unknown"]
Source = Literal["http", "stream", "queue"]

MAX_DETAIL_CHARS = 500


class Remediation(BaseModel):
    id: str
    label: str
    description: str
    # A page of doce where the user can act (e.g. Settings → Providers); "" for none.
    href: str = ""


class Diagnostic(BaseModel):
    """What went wrong with the agent, shown in the chat as a card (JSON-serialisable)."""

    category: Category
    title: str
    message: str
    remediation: list[Remediation] = Field(default_factory=list)
    retryable: bool
    source: Source = "http"
    error_name: str = ""
    status_code: int | None = None


_TITLES: dict[Category, str] = {
    "auth": "Authentication failed",
    "provider_model": "Model error",
    "runtime_unreachable": "Agent unavailable",
    "timeout": "Request timed out",
    "unknown": "Unexpected error",
}

_REMEDIATION: dict[Category, list[Remediation]] = {
    "auth": [
        Remediation(
            id="check-credentials",
            label="Check provider credentials",
            description="Open Settings → Providers and re-enter the API key for this model.",
        ),
        Remediation(
            id="restart-agent",
            label="Restart the project",
            description="Stop and start the project so the agent gets fresh credentials.",
        ),
    ],
    "provider_model": [
        Remediation(
            id="change-model",
            label="Try another model",
            description="Pick a different model for this project, or retry in a moment.",
        ),
        Remediation(
            id="check-provider",
            label="Check the provider",
            description="The model provider rejected the request; check its status and quota.",
        ),
    ],
    "runtime_unreachable": [
        Remediation(
            id="start-project",
            label="Start the project",
            description="The agent container is not answering; start or restart the project.",
        ),
        Remediation(
            id="check-docker",
            label="Check Docker",
            description="Make sure the Docker Engine is running on the doce host.",
        ),
    ],
    "timeout": [
        Remediation(
            id="retry",
            label="Retry",
            description="The agent took too long to answer; send the message again.",
        ),
    ],
    "unknown": [
        Remediation(
            id="retry",
            label="Retry",
            description="Send the message again; if it keeps failing, restart the project.",
        ),
    ],
}

_STATUS_CATEGORY: dict[int, Category] = {
    400: "provider_model",
    401: "auth",
    403: "auth",
    408: "timeout",
    413: "provider_model",
    429: "provider_model",
    502: "runtime_unreachable",
    503: "runtime_unreachable",
    504: "timeout",
}

_ERROR_NAME_CATEGORY: dict[str, Category] = {
    "ProviderAuthError": "auth",
    "APIError": "provider_model",
    "MessageOutputLengthError": "provider_model",
    "ContextOverflowError": "provider_model",
    "ContentFilterError": "provider_model",
    "StructuredOutputError": "provider_model",
    "MessageAbortedError": "timeout",
    "UnknownError": "unknown",
}

_TEXT_CATEGORY: list[tuple[re.Pattern[str], Category]] = [
    (re.compile(r"timed? ?out|deadline exceeded", re.I), "timeout"),
    (
        re.compile(
            r"econnrefused|enotfound|connection refused|unreachable|cannot connect|"
            r"connection reset|socket hang up|network error|fetch failed",
            re.I,
        ),
        "runtime_unreachable",
    ),
    (
        re.compile(r"unauthori[sz]ed|authentication failed|invalid api key|forbidden", re.I),
        "auth",
    ),
    (re.compile(r"rate limit|too many requests|quota", re.I), "provider_model"),
]


def clean(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Redact secrets from `text` and cut it to `MAX_DETAIL_CHARS` characters."""
    text = redact_text(str(text), extra_secrets=secrets)
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"


def make_diagnostic(
    category: Category,
    message: str,
    *,
    retryable: bool,
    source: Source = "http",
    error_name: str = "",
    status_code: int | None = None,
    secrets: tuple[str, ...] = (),
) -> Diagnostic:
    """Build a `Diagnostic` with the category's title and remediation; `message` is cleaned."""
    return Diagnostic(
        category=category,
        title=_TITLES[category],
        message=clean(message, secrets),
        remediation=list(_REMEDIATION[category]),
        retryable=retryable,
        source=source,
        error_name=error_name,
        status_code=status_code,
    )


# Errors doce's model gateway writes itself start with this (gateway.proxy): they name the
# provider, its URL and what to do, so they are shown as they are, with a way to Settings.
GATEWAY_ERROR_PREFIX = "doce gateway:"
SETTINGS_PROVIDERS_URL = "/settings/#providers"
_GATEWAY_REMEDIATION = [
    Remediation(
        id="open-provider-settings",
        label="Open Settings → Providers",
        description="Use Test connection on this provider, then fix its URL or key, or start "
        "the model server. Send the message again once it answers.",
        href=SETTINGS_PROVIDERS_URL,
    ),
    Remediation(
        id="change-model",
        label="Try another model",
        description="Pick a model of another provider for this project.",
    ),
]


def gateway_diagnostic(
    text: str, *, source: Source, error_name: str, status: int | None
) -> Diagnostic:
    """The card for an error doce's model gateway reported (see `GATEWAY_ERROR_PREFIX`)."""
    message = text[text.find(GATEWAY_ERROR_PREFIX) + len(GATEWAY_ERROR_PREFIX) :].strip()
    title = "Model budget spent" if status == 402 else "Model provider problem"
    return Diagnostic(
        category="provider_model",
        title=title,
        message=clean(message),
        remediation=list(_GATEWAY_REMEDIATION),
        retryable=False,
        source=source,
        error_name=error_name,
        status_code=status,
    )


def category_for_text(text: str) -> Category:
    for pattern, category in _TEXT_CATEGORY:
        if pattern.search(text):
            return category
    return "unknown"


def diagnostic_for_status(status: int, detail: str, secrets: tuple[str, ...] = ()) -> Diagnostic:
    """Classify an HTTP error answer of the agent API (`status` ≥ 400)."""
    category = _STATUS_CATEGORY.get(status) or ("unknown" if status >= 500 else "provider_model")
    if status == 404:
        category = "unknown"
    retryable = status in (408, 429) or status >= 500
    message = {
        "auth": "The agent refused doce's credentials.",
        "runtime_unreachable": "The agent is not reachable right now.",
        "timeout": "The agent did not answer in time.",
    }.get(category, f"The agent answered with an error (HTTP {status}).")
    if detail:
        message = f"{message} {detail}"
    return make_diagnostic(
        category, message, retryable=retryable, status_code=status, secrets=secrets
    )


def diagnostic_for_transport(exc: httpx.HTTPError, secrets: tuple[str, ...] = ()) -> Diagnostic:
    """Classify a transport failure (no HTTP answer at all)."""
    if isinstance(exc, httpx.TimeoutException):
        return make_diagnostic(
            "timeout",
            "The agent did not answer in time.",
            retryable=True,
            error_name=type(exc).__name__,
            secrets=secrets,
        )
    return make_diagnostic(
        "runtime_unreachable",
        "The agent is not reachable. Is the project running?",
        retryable=True,
        error_name=type(exc).__name__,
        secrets=secrets,
    )


def diagnostic_for_agent_error(
    error: dict[str, Any] | None, *, source: Source = "stream", secrets: tuple[str, ...] = ()
) -> Diagnostic:
    """Classify an error object OpenCode reports (`session.error`, a message's `error`).

    Shape: `{"name": "APIError", "data": {"message": str, "statusCode": int,
    "isRetryable": bool, ...}}`. Response bodies and headers are never copied.
    """
    error = error or {}
    name = str(error.get("name") or "UnknownError")
    raw_data = error.get("data")
    data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
    text = str(data.get("message") or name)
    status = data.get("statusCode") if isinstance(data.get("statusCode"), int) else None
    if GATEWAY_ERROR_PREFIX in text:
        return gateway_diagnostic(text, source=source, error_name=name, status=status)
    category = _ERROR_NAME_CATEGORY.get(name) or category_for_text(text)
    if name == "APIError" and status in (401, 403):
        category = "auth"
    if category == "unknown":
        category = category_for_text(text)
    retryable = bool(data.get("isRetryable", category in ("timeout", "runtime_unreachable")))
    return make_diagnostic(
        category,
        text,
        retryable=retryable,
        source=source,
        error_name=name,
        status_code=status,
        secrets=secrets,
    )


class OpencodeError(Exception):
    """A failed call to an agent; `diagnostic` says what and whether a retry can help.

    `permanent` is the inverse of `diagnostic.retryable` (the queue's vocabulary).
    `status_code` is the HTTP status when the agent answered, else None.
    """

    def __init__(self, diagnostic: Diagnostic, *, operation: str = "") -> None:
        self.diagnostic = diagnostic
        self.operation = operation
        super().__init__(f"{operation}: {diagnostic.title}: {diagnostic.message}".lstrip(": "))

    @property
    def status_code(self) -> int | None:
        return self.diagnostic.status_code

    @property
    def retryable(self) -> bool:
        return self.diagnostic.retryable

    @property
    def permanent(self) -> bool:
        return not self.diagnostic.retryable

    @property
    def not_found(self) -> bool:
        """True when the agent answered 404 (e.g. the session no longer exists)."""
        return self.diagnostic.status_code == 404
