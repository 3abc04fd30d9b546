"""Exceptions of the job queue: enqueue errors, and the control-flow signals of a handler.

`JobCancelled`, `LeaseLost`, `WorkerShuttingDown` and `Reschedule` derive from
`BaseException`, like `KeyboardInterrupt`: a handler's broad `except Exception:` cannot
swallow them by accident (upstream lost running-job cancellation exactly that way).
"""

from __future__ import annotations


class QueueError(Exception):
    """Base class of errors raised by the queue's API (never by handlers)."""


class UnknownJobType(QueueError, ValueError):
    """No handler is registered for the job type (raised by `enqueue`, nothing written)."""


class InvalidJobPayload(QueueError, ValueError):
    """The payload does not validate against the type's payload model (nothing written)."""


class PermanentJobError(Exception):
    """Raise from a handler for a failure that retrying cannot fix: the job fails at once.

    Any exception with a truthy `permanent` attribute is treated the same way, so other
    modules' errors (e.g. a Docker error classified as permanent) need not subclass this.
    """

    permanent = True


def is_permanent(exc: BaseException) -> bool:
    """True when `exc` (or a `permanent` flag on it) says retrying cannot help."""
    return bool(getattr(exc, "permanent", False))


class JobControl(BaseException):
    """Base of the signals a job context raises to end a handler early."""


class JobCancelled(JobControl):
    """Cancellation was requested: the job ends `cancelled`."""


class LeaseLost(JobControl):
    """The job is no longer this worker's (force-cancelled or reclaimed): stop, write nothing."""


class WorkerShuttingDown(JobControl):
    """The worker is stopping: the job goes back to `queued` without spending an attempt."""


class Reschedule(JobControl):
    """Raised by `ctx.reschedule(delay_seconds)`: back to `queued` at now + delay, no error."""

    def __init__(self, delay_seconds: float) -> None:
        super().__init__(delay_seconds)
        self.delay_seconds = delay_seconds
