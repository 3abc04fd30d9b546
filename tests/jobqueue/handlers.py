"""Job handlers used by the queue tests (imported by the tests and by worker subprocesses).

Handlers that record what happened append `job_id start_ns end_ns serial_key pid` lines to
a file in `$DOCE_TEST_RECORD_DIR` (one file per process), so tests can check exactly-once
and no-overlap across worker processes.
"""

from __future__ import annotations

import os
import threading
import time

from pydantic import BaseModel, Field

from jobqueue import JobContext, PermanentJobError, job_handler

# In-process observations: job id -> list of attempts seen, and events to sync on.
SEEN: dict[int, list[int]] = {}
STARTED = threading.Event()


class NoopPayload(BaseModel):
    n: int = 0


class RecordPayload(BaseModel):
    n: int
    sleep_ms: float = 0


class FailPayload(BaseModel):
    message: str = "boom"
    succeed_on_attempt: int = 0


class SleepPayload(BaseModel):
    seconds: float = Field(ge=0, le=60)
    checkpoints: bool = True


class ChainPayload(BaseModel):
    steps_left: int = Field(ge=0)
    fail_after_enqueue: bool = False


class ForeignError(Exception):
    """Stands for another module's error classified as permanent (no queue subclass)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.permanent = True


@job_handler("test.noop", payload=NoopPayload)
def noop(ctx: JobContext) -> None:
    SEEN.setdefault(ctx.job.pk, []).append(ctx.attempt)


@job_handler("test.record", payload=RecordPayload)
def record(ctx: JobContext) -> None:
    start = time.monotonic_ns()
    if ctx.payload.sleep_ms:
        time.sleep(ctx.payload.sleep_ms / 1000)
    end = time.monotonic_ns()
    folder = os.environ["DOCE_TEST_RECORD_DIR"]
    line = f"{ctx.job.pk} {start} {end} {ctx.job.serial_key} {os.getpid()}\n"
    with open(os.path.join(folder, f"{os.getpid()}.log"), "a") as fh:
        fh.write(line)


@job_handler("test.fail", payload=FailPayload, max_attempts=3)
def fail(ctx: JobContext) -> None:
    SEEN.setdefault(ctx.job.pk, []).append(ctx.attempt)
    if ctx.payload.succeed_on_attempt and ctx.attempt >= ctx.payload.succeed_on_attempt:
        return
    raise ValueError(f"{ctx.payload.message} on attempt {ctx.attempt} token=sk-abcdefghijklmnop")


@job_handler("test.permanent", payload=FailPayload)
def permanent(ctx: JobContext) -> None:
    raise PermanentJobError(ctx.payload.message)


@job_handler("test.foreign_permanent", payload=FailPayload)
def foreign_permanent(ctx: JobContext) -> None:
    raise ForeignError(ctx.payload.message)


@job_handler("test.reschedule", payload=NoopPayload)
def reschedule(ctx: JobContext) -> None:
    seen = SEEN.setdefault(ctx.job.pk, [])
    seen.append(ctx.attempt)
    if len(seen) <= ctx.payload.n:
        ctx.reschedule(0)


@job_handler("test.sleep", payload=SleepPayload)
def sleep(ctx: JobContext) -> None:
    """Sleep `seconds`; with `checkpoints`, check for cancellation every 20 ms."""
    STARTED.set()
    marker = os.environ.get("DOCE_TEST_RECORD_DIR")
    if marker:
        with open(os.path.join(marker, f"started-{ctx.job.pk}-{os.getpid()}"), "w") as fh:
            fh.write(str(ctx.attempt))
    deadline = time.monotonic() + ctx.payload.seconds
    while time.monotonic() < deadline:
        if ctx.payload.checkpoints:
            try:
                ctx.throw_if_cancel_requested()
            except Exception:  # must not swallow a checkpoint's signal
                raise AssertionError("checkpoint signal caught as Exception") from None
        time.sleep(0.02)
    SEEN.setdefault(ctx.job.pk, []).append(ctx.attempt)


@job_handler("test.chain", payload=ChainPayload)
def chain(ctx: JobContext) -> None:
    ctx.log("chain step", steps_left=ctx.payload.steps_left, api_key="sk-secretsecretsecret")
    if ctx.payload.steps_left:
        ctx.enqueue("test.chain", {"steps_left": ctx.payload.steps_left - 1})
    if ctx.payload.fail_after_enqueue:
        raise PermanentJobError("failed after enqueueing a follow-up")


@job_handler("test.untyped")
def untyped(ctx: JobContext) -> None:
    SEEN.setdefault(ctx.job.pk, []).append(ctx.attempt)
