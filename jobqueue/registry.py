"""Handler registry: job types, their handler functions and payload models.

Domain apps register handlers in their own `jobs.py`, which the queue imports from every
installed app at start-up (web and worker alike, so `enqueue` can validate payloads)::

    from jobqueue import JobContext, job_handler

    class ComposeUpPayload(BaseModel):
        project_id: str

    @job_handler("docker.composeUp", payload=ComposeUpPayload)
    def compose_up(ctx: JobContext) -> None:
        ctx.throw_if_cancel_requested()
        ...
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import autodiscover_modules
from pydantic import BaseModel, ValidationError

from jobqueue.errors import InvalidJobPayload, UnknownJobType

if TYPE_CHECKING:
    from jobqueue.context import JobContext

MAX_TYPE_LENGTH = 100


@dataclass(frozen=True)
class HandlerSpec:
    """A registered job type: `fn(ctx)` runs it; `payload_model` validates its payload."""

    type: str
    fn: Callable[[JobContext], None]
    payload_model: builtins.type[BaseModel] | None  # the field `type` hides the builtin
    max_attempts: int | None

    def validate(self, payload: dict | BaseModel | None) -> dict[str, Any]:
        """Return the payload as the JSON-able dict to store, or raise `InvalidJobPayload`."""
        model = self.payload_model
        if model is None:
            if isinstance(payload, BaseModel):
                payload = payload.model_dump(mode="json")
            payload = {} if payload is None else payload
            if not isinstance(payload, dict):
                raise InvalidJobPayload(f"payload of {self.type!r} must be an object")
            try:
                return json.loads(json.dumps(payload))
            except (TypeError, ValueError) as exc:
                raise InvalidJobPayload(f"payload of {self.type!r} is not JSON: {exc}") from None
        return self.parse(payload).model_dump(mode="json")

    def parse(self, payload: dict | BaseModel | None) -> Any:
        """Return the validated payload model (the stored dict when there is no model)."""
        model = self.payload_model
        if model is None:
            return payload or {}
        if isinstance(payload, model):
            payload = payload.model_dump(mode="json")
        elif isinstance(payload, BaseModel):
            raise InvalidJobPayload(
                f"payload of {self.type!r} must be {model.__name__}, "
                f"got {payload.__class__.__name__}"
            )
        try:
            return model.model_validate(payload if payload is not None else {})
        except ValidationError as exc:
            raise InvalidJobPayload(
                f"invalid payload for {self.type!r}: {format_validation_error(exc)}"
            ) from None


def format_validation_error(exc: ValidationError) -> str:
    """One line naming each bad field: `project_id: Field required; port: ...`."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in error["loc"]) or "payload"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


_HANDLERS: dict[str, HandlerSpec] = {}


def job_handler(
    type: str, *, payload: type[BaseModel] | None = None, max_attempts: int | None = None
) -> Callable[[Callable[[JobContext], None]], Callable[[JobContext], None]]:
    """Register the decorated `fn(ctx: JobContext) -> None` as the handler of job `type`.

    `payload` is the pydantic model the payload is validated against at enqueue and again
    before the handler runs (`ctx.payload` is an instance of it). `max_attempts` is the
    type's default when `enqueue` gives none. Registering a different function for a type
    that already has one raises `ImproperlyConfigured`.
    """
    if not type or len(type) > MAX_TYPE_LENGTH:
        raise ImproperlyConfigured(f"job type must be 1..{MAX_TYPE_LENGTH} characters: {type!r}")
    if max_attempts is not None and max_attempts < 1:
        raise ImproperlyConfigured(f"max_attempts of {type!r} must be at least 1")

    def register(fn: Callable[[JobContext], None]) -> Callable[[JobContext], None]:
        existing = _HANDLERS.get(type)
        if existing is not None and _qualified(existing.fn) != _qualified(fn):
            raise ImproperlyConfigured(
                f"job type {type!r} already has handler {_qualified(existing.fn)}"
            )
        _HANDLERS[type] = HandlerSpec(type, fn, payload, max_attempts)
        return fn

    return register


def _qualified(fn: Callable) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def get_handler(type: str) -> HandlerSpec:
    """The registration of job `type`; raises `UnknownJobType` when there is none."""
    try:
        return _HANDLERS[type]
    except KeyError:
        raise UnknownJobType(f"no handler is registered for job type {type!r}") from None


def registered_types() -> list[str]:
    return sorted(_HANDLERS)


def unregister(type: str) -> None:
    """Forget job `type` (for tests that register throw-away handlers)."""
    _HANDLERS.pop(type, None)


def autodiscover() -> None:
    """Import the `jobs` module of every installed app, registering its handlers."""
    autodiscover_modules("jobs")
