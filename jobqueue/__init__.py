"""doce's job queue (Django app label `queue`).

The interface other apps use (imported lazily, so `from jobqueue import enqueue` works in
any module once Django is set up):

- `enqueue(type, payload, *, dedupe_key=None, serial_key=None, run_at=None,
  max_attempts=None, priority=0) -> Job`
- `job_handler(type, *, payload=None, max_attempts=None)`: decorator for
  `def handle(ctx: JobContext) -> None` in an app's `jobs.py`
- `JobContext`, `PermanentJobError`, `is_permanent`
- `register_periodic(name, every_seconds, fn)`: worker housekeeping every N seconds
- `register_visible_keys(name, fn)`: which serial keys (so which jobs) a user may see, for
  the monitor and `Job.objects.for_user` (installed by a domain app's `AppConfig.ready`)
- service functions: `cancel_job`, `force_cancel_job`, `run_job_now`, `retry_job`,
  `pause_queue`, `resume_queue`, `is_paused`
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "enqueue": "jobqueue.services",
    "cancel_job": "jobqueue.services",
    "force_cancel_job": "jobqueue.services",
    "run_job_now": "jobqueue.services",
    "retry_job": "jobqueue.services",
    "pause_queue": "jobqueue.services",
    "resume_queue": "jobqueue.services",
    "is_paused": "jobqueue.services",
    "job_handler": "jobqueue.registry",
    "JobContext": "jobqueue.context",
    "register_periodic": "jobqueue.periodic",
    "register_visible_keys": "jobqueue.visibility",
    "PermanentJobError": "jobqueue.errors",
    "UnknownJobType": "jobqueue.errors",
    "InvalidJobPayload": "jobqueue.errors",
    "is_permanent": "jobqueue.errors",
    "Job": "jobqueue.models",
    "JobState": "jobqueue.models",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'jobqueue' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
