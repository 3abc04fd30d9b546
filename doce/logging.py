"""structlog configuration and request-context middleware.

All logs (doce's, Django's, daphne's, the worker's) go through structlog's
`ProcessorFormatter` to stdout: JSON lines, or a readable console rendering on a TTY.
Context (`request_id`, `user_id`, later `project_id`, `job_id`) is bound with
`structlog.contextvars`, so any log call made while handling a request carries it.
Every event passes through `redact_event` before rendering: secrets never reach a log.
"""

from __future__ import annotations

import logging
import logging.config
import sys
import uuid
from collections.abc import Callable

import structlog
from django.http import HttpRequest, HttpResponse

from doce.redact import redact_mapping

REQUEST_ID_HEADER = "X-Request-ID"


def redact_event(_logger, _method: str, event_dict: dict) -> dict:
    """structlog processor: mask secret-named fields and secret shapes in text."""
    return redact_mapping(event_dict)


def _renderer(fmt: str):
    use_console = fmt == "console" or (fmt == "auto" and sys.stdout.isatty())
    if use_console:
        return structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    return structlog.processors.JSONRenderer()


def configure_logging(*, level: str = "INFO", fmt: str = "auto") -> None:
    """Route stdlib logging and structlog to stdout through one renderer.

    `level` is a logging level name; `fmt` is `json`, `console` or `auto`.
    """
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "structlog": {
                    "()": structlog.stdlib.ProcessorFormatter,
                    "processors": [
                        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        redact_event,
                        _renderer(fmt),
                    ],
                    "foreign_pre_chain": shared,
                }
            },
            "handlers": {
                "stdout": {
                    "class": "logging.StreamHandler",
                    "stream": "ext://sys.stdout",
                    "formatter": "structlog",
                }
            },
            "root": {"handlers": ["stdout"], "level": level},
            "loggers": {
                "django": {"level": level, "propagate": True},
                # One line per request comes from RequestContextMiddleware instead.
                "django.server": {"level": "WARNING", "propagate": True},
                "daphne": {"level": level, "propagate": True},
                "django.channels.server": {"level": "WARNING", "propagate": True},
                "asyncio": {"level": "WARNING", "propagate": True},
                "httpx": {"level": "WARNING", "propagate": True},
                "httpcore": {"level": "WARNING", "propagate": True},
                "urllib3": {"level": "WARNING", "propagate": True},
                "docker": {"level": "WARNING", "propagate": True},
            },
        }
    )


class RequestContextMiddleware:
    """Bind a request id to every log line of a request and echo it in `X-Request-ID`.

    A well-formed incoming `X-Request-ID` (from a proxy) is reused; otherwise a new one is made.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.log = structlog.get_logger("doce.request")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _valid_request_id(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]  # read by error views
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        if not request.path.startswith("/static/"):
            self.log.info(
                "request",
                method=request.method,
                path=request.path,
                status=response.status_code,
            )
        structlog.contextvars.clear_contextvars()
        return response


class UserContextMiddleware:
    """Bind `user_id` once authentication has run (placed after AuthenticationMiddleware)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            structlog.contextvars.bind_contextvars(user_id=user.pk)
        return self.get_response(request)


def _valid_request_id(value: str) -> bool:
    return 8 <= len(value) <= 64 and all(c.isalnum() or c in "-_" for c in value)
