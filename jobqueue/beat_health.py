"""A worker container's health check: `python -m jobqueue.beat_health FILE [SECONDS]`.

Exit 0 when FILE (what `run_worker --beat-file FILE` touches after each heartbeat recorded
in the database) was touched less than SECONDS ago (default 30: six heartbeats at the
default `DOCE_QUEUE_HEARTBEAT_SECONDS` of 5 s); else exit 1 with the reason. A worker whose
database is unreachable, or whose heartbeat thread died, turns unhealthy. Imports no
Django: a check runs every few seconds and must stay cheap.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

DEFAULT_MAX_AGE_SECONDS = 30.0


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print("usage: python -m jobqueue.beat_health FILE [SECONDS]", file=sys.stderr)
        return 2
    max_age = float(argv[1]) if len(argv) == 2 else DEFAULT_MAX_AGE_SECONDS
    try:
        age = time.time() - Path(argv[0]).stat().st_mtime
    except OSError as exc:
        print(f"no heartbeat recorded yet: {exc}", file=sys.stderr)
        return 1
    if age > max_age:
        print(f"last heartbeat {age:.0f} s ago (more than {max_age:.0f} s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
