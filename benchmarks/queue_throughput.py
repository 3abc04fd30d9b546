"""Job queue throughput and start latency: doce's queue vs django-tasks + django-tasks-db.

    .venv/bin/python benchmarks/queue_throughput.py [--quick]

Prints one JSON line per configuration:
`{"backend", "workers", "threads_per_worker", "jobs", "jobs_per_s", "start_latency_p50_ms",
"start_latency_p99_ms"}` for doce's queue on SQLite (1 worker) and Postgres (1 and 4
workers), a Postgres run with 20 serialization keys, and django-tasks with the
django-tasks-db backend on Postgres (4 workers) with the same no-op job. Each configuration
gets a fresh database (SQLite file in a temp dir; Postgres database `doce_bench_<pid>_<n>`
on DOCE_BENCH_POSTGRES_URL's server, dropped afterwards).

Method:
- Throughput: enqueue `jobs` no-op jobs, start the worker processes, and divide the job
  count by the span from the first job's start to the last job's finish (database
  timestamps, so process start-up is excluded for both queues).
- Start latency: with the workers idle, enqueue jobs one at a time (5-25 ms apart) and take
  each job's start time minus its enqueue time.
A worker is one process; doce's workers run `threads_per_worker` job threads (the default 2),
django-tasks-db's `db_worker` runs one task at a time, polling every 0.25 s (doce's idle
poll when no wake-up arrives).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

POSTGRES_SERVER = os.environ.get(
    "DOCE_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)


def setup_django() -> None:
    """Configure doce's settings plus the django-tasks apps, then register the no-op jobs."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "doce.settings")
    os.environ.setdefault("DOCE_LOG_LEVEL", "WARNING")
    import django
    from django.conf import settings

    import doce.settings as base

    values = {name: getattr(base, name) for name in dir(base) if name.isupper()}
    values["INSTALLED_APPS"] = [*base.INSTALLED_APPS, "django_tasks", "django_tasks_db"]
    values["TASKS"] = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    settings.configure(**values)
    django.setup()

    from jobqueue import job_handler, outbox

    outbox.wake_consumers = False  # the in-memory layer reaches no consumer from here

    @job_handler("bench.noop")
    def noop(ctx) -> None:
        """Does nothing: the benchmark measures the queue, not the work."""

    from django_tasks import task
    from django_tasks.base import Task

    # Replace the plain function with its Task under the same name: django-tasks workers
    # import the task by its module path.
    module = sys.modules[__name__]
    if not isinstance(module.tasks_noop, Task):
        module.tasks_noop = task()(module.tasks_noop)


def tasks_noop() -> None:
    """The django-tasks twin of `bench.noop`."""


# --- Child processes ----------------------------------------------------------------------


def child_main(role: str, threads: int) -> None:
    setup_django()
    from django.core.management import call_command

    if role == "worker":
        call_command("run_worker", "--concurrency", str(threads), "--no-housekeeping")
    elif role == "tasks-worker":
        call_command("db_worker", "--interval", "0.25", "--no-startup-delay", verbosity=0)


def start_workers(role: str, count: int, threads: int, env: dict) -> list[subprocess.Popen]:
    # Run as `benchmarks.queue_throughput`, not `__main__`: django-tasks finds the task by
    # that module path.
    code = f"import benchmarks.queue_throughput as b; b.child_main({role!r}, {threads})"
    argv = [sys.executable, "-c", code]
    return [subprocess.Popen(argv, env=env, cwd=ROOT) for _ in range(count)]


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for process in workers:
        process.send_signal(signal.SIGTERM)
    for process in workers:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- Databases ----------------------------------------------------------------------------


class Database:
    """A fresh database for one configuration; `url` is its DATABASE_URL."""

    counter = 0

    def __init__(self, vendor: str, workdir: Path) -> None:
        Database.counter += 1
        self.vendor = vendor
        if vendor == "sqlite":
            self.url = f"sqlite:///{workdir / f'bench{Database.counter}.sqlite3'}"
            self.name = None
        else:
            self.name = f"doce_bench_{os.getpid()}_{Database.counter}"
            self._admin(f'CREATE DATABASE "{self.name}"')
            self.url = POSTGRES_SERVER.rsplit("/", 1)[0] + "/" + self.name

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(POSTGRES_SERVER, autocommit=True) as conn:
            conn.execute(sql)

    def drop(self) -> None:
        if self.name:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def run_in_database(db: Database, fn, *args):
    """Run `fn(*args)` in a child Python bound to `db` (settings are per process)."""
    env = {**os.environ, "DATABASE_URL": db.url}
    code = (
        "import json, sys; sys.argv = ['bench']; import benchmarks.queue_throughput as b; "
        f"b.setup_django(); print(json.dumps(b.{fn}(*{args!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- Steps run inside a configured child --------------------------------------------------


def migrate() -> bool:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return True


def enqueue_batch(kind: str, count: int, serial_keys: int) -> bool:
    from django.db import transaction

    with transaction.atomic():
        if kind == "doce":
            from jobqueue import enqueue

            for n in range(count):
                key = f"project:{n % serial_keys}" if serial_keys else None
                enqueue("bench.noop", {}, serial_key=key)
        else:
            for _ in range(count):
                tasks_noop.enqueue()
    return True


def count_finished(kind: str) -> int:
    if kind == "doce":
        from jobqueue.models import Job

        return Job.objects.finished().count()
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.finished().count()


def throughput_span(kind: str) -> float:
    """Seconds from the first start to the last finish of all jobs."""
    from django.db.models import Max, Min

    if kind == "doce":
        from jobqueue.models import Job

        span = Job.objects.aggregate(a=Min("started_at"), b=Max("finished_at"))
    else:
        from django_tasks_db.models import DBTaskResult

        span = DBTaskResult.objects.aggregate(a=Min("started_at"), b=Max("finished_at"))
    return (span["b"] - span["a"]).total_seconds()


def trickle_latencies(kind: str, count: int) -> list[float]:
    """Enqueue `count` jobs one by one, 5-25 ms apart; return start - enqueue (ms)."""
    if kind == "doce":
        from jobqueue import enqueue
        from jobqueue.models import Job

        ids = []
        for _ in range(count):
            ids.append(enqueue("bench.noop", {}).pk)
            time.sleep(random.uniform(0.005, 0.025))
        _wait(lambda: Job.objects.filter(pk__in=ids, finished_at__isnull=False).count() == count)
        rows = Job.objects.filter(pk__in=ids).values_list("created_at", "started_at")
    else:
        from django_tasks_db.models import DBTaskResult

        ids = []
        for _ in range(count):
            ids.append(tasks_noop.enqueue().id)
            time.sleep(random.uniform(0.005, 0.025))
        done = DBTaskResult.objects.filter(pk__in=ids, finished_at__isnull=False)
        _wait(lambda: done.count() == count)
        rows = DBTaskResult.objects.filter(pk__in=ids).values_list("enqueued_at", "started_at")
    return [(started - created).total_seconds() * 1000 for created, started in rows]


def _wait(predicate, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("jobs did not finish")
        time.sleep(0.2)


# --- One configuration --------------------------------------------------------------------


def measure_here(kind: str, workers: int, threads: int, jobs: int, samples: int, keys: int):
    """Run one configuration against this process's database (called in a child).

    Polls the database with this process's ORM connection (0.2 s apart) so the
    measurement itself costs almost no CPU next to the workers.
    """
    enqueue_batch(kind, jobs, keys)
    env = {**os.environ, "DOCE_LOG_LEVEL": "WARNING"}
    procs = start_workers("worker" if kind == "doce" else "tasks-worker", workers, threads, env)
    try:
        _wait(lambda: count_finished(kind) >= jobs, timeout=600)
        span = throughput_span(kind)
        latencies = sorted(trickle_latencies(kind, samples))
    finally:
        stop_workers(procs)
    return {
        "jobs_per_s": round(jobs / span, 1),
        "start_latency_p50_ms": round(statistics.median(latencies), 1),
        "start_latency_p99_ms": round(
            latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1
        ),
    }


def measure(
    *,
    backend: str,
    vendor: str,
    workers: int,
    threads: int,
    jobs: int,
    samples: int,
    workdir: Path,
    serial_keys: int = 0,
) -> dict:
    kind = "doce" if backend in {"sqlite", "postgres"} else "tasks-db"
    db = Database(vendor, workdir)
    try:
        run_in_database(db, "migrate")
        numbers = run_in_database(
            db, "measure_here", kind, workers, threads, jobs, samples, serial_keys
        )
    finally:
        db.drop()
    result = {
        "backend": backend,
        "workers": workers,
        "threads_per_worker": threads,
        "jobs": jobs,
        **numbers,
    }
    if serial_keys:
        result["serial_keys"] = serial_keys
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Fewer jobs and samples.")
    args = parser.parse_args()
    jobs, samples = (1000, 50) if args.quick else (5000, 200)
    configs = [
        {"backend": "sqlite", "vendor": "sqlite", "workers": 1, "threads": 2},
        {"backend": "postgres", "vendor": "postgres", "workers": 1, "threads": 2},
        {"backend": "postgres", "vendor": "postgres", "workers": 4, "threads": 2},
        {
            "backend": "postgres",
            "vendor": "postgres",
            "workers": 4,
            "threads": 2,
            "serial_keys": 20,
        },
        {"backend": "django-tasks-db", "vendor": "postgres", "workers": 4, "threads": 1},
    ]
    with tempfile.TemporaryDirectory(prefix="doce-bench-") as tmp:
        for config in configs:
            result = measure(jobs=jobs, samples=samples, workdir=Path(tmp), **config)
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
