"""The warm pool: stacks started ahead of time on the site template, claimed by new projects.

`DOCE_WARM_POOL_SIZE` stacks (`PoolEntry` rows) run with the template's site, the preview's
first compile done (its page was requested once) and the agent answering. A create claims
one (`claim`, in the create's transaction): the project adopts the entry's stack name,
folder, ports and agent password, and its chain starts with `project.adopt`
(`projects.jobs.adopt`) instead of scaffolding and `compose up`. The worker refills the
pool in the background (`pool.fill`, one at a time: dedupe key `pool.fill`).

What an entry holds before a claim: the template's files, a stack with no user's data, an
agent config with no provider, no model and no gateway token (`runtime.render_stack` with
no provider config), and its own OPENCODE_SERVER_PASSWORD (not a user's secret). The
claiming project's `project.adopt` renders the owner's providers, model and a fresh gateway
token (the gateway maps it to the project from then on) and has the running agent read it
again (`POST /instance/dispose`, a restart when that fails).

Bookkeeping, one home each:

- Claim: a compare-and-set on the entry's state (`ready` → `discarding`, then the row is
  deleted in the same transaction), so two creates never claim one entry, on SQLite and
  Postgres alike; the loser starts cold.
- Limits: entries take their ports from `DOCE_PORT_RANGE` like projects
  (`projects.ports`), and their memory like a running project (docs/configuration.md).
- Replacement: an entry's `fingerprint` is the template's and images' (`current_fingerprint`);
  `maintain` (worker, every 30 s) discards entries whose fingerprint is not current, whose
  containers are gone, that a crashed refill left `starting`, or beyond the pool's size,
  and asks for a refill when the pool is short. Discarding is a job (`pool.discard`).
- Reconciliation: `projects.reconcile` counts entries' stacks as known (not orphans).

Jobs of the pool share the serial key `pool` (staff see them in the queue monitor).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from functools import cache

import httpx
import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from pydantic import BaseModel, Field

import jobqueue
from doce.docker.failures import FailureKind, StackError
from doce.docker.images import image_ids
from doce.docker.stacks import list_stacks
from jobqueue import JobContext, PermanentJobError, job_handler
from jobqueue.models import Job, JobState
from projects import ports, runtime
from projects.models import PoolEntry, Project
from projects.scaffold import TEMPLATE_DIR, scaffold_site

log = structlog.get_logger(__name__)

FILL = "pool.fill"
DISCARD = "pool.discard"
SERIAL_KEY = "pool"
# A warm-up probes this often (seconds); the first compile of the preview may take this long.
PROBE_INTERVAL_SECONDS = 0.2
COMPILE_TIMEOUT_SECONDS = 120.0
# While the Engine is unreachable a refill waits this long between tries (seconds).
ENGINE_WAIT_SECONDS = 30.0
# A refill runs after the jobs of people waiting for their projects (higher runs first).
FILL_PRIORITY = -10


class EntryPayload(BaseModel):
    entry_id: str = Field(pattern=r"^[0-9a-f]{16}$")


def pool_size() -> int:
    """How many warm stacks to keep (`DOCE_WARM_POOL_SIZE`; 0: no pool)."""
    return settings.DOCE_WARM_POOL_SIZE


@cache
def template_digest() -> str:
    """SHA-256 hex of the site template (every file's path and bytes). The template ships
    with doce's code, so it is read once per process."""
    digest = hashlib.sha256()
    for path in sorted(p for p in TEMPLATE_DIR.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(TEMPLATE_DIR)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def current_fingerprint() -> str:
    """32 hex chars naming what a warm stack is made of now: the site template and the ids
    of the preview and agent images (a rebuilt image changes it). Raises
    `StackError(ENGINE_UNREACHABLE)`."""
    ids = image_ids((settings.DOCE_PREVIEW_IMAGE, settings.DOCE_AGENT_IMAGE))
    parts = [template_digest(), *(f"{name}={ids[name]}" for name in sorted(ids))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


# --- Claim (web process, in the create's transaction) -----------------------------------------


def claim(project: Project) -> PoolEntry | None:
    """Give `project` a ready warm stack, or return None (no pool, none ready, or every
    ready one was claimed by another create first).

    The project adopts the entry's stack name, folder, ports and agent password; the entry
    row is gone. A compare-and-set on the entry's state decides between concurrent claims.
    Call inside the create's transaction (it commits or rolls back with the project); a
    refill is queued with it. Returns the claimed entry (no longer in the database).
    """
    if not pool_size():
        return None
    claimed = None
    for entry in PoolEntry.objects.filter(state=PoolEntry.State.READY).order_by("ready_at")[:5]:
        taken = PoolEntry.objects.filter(pk=entry.pk, state=PoolEntry.State.READY).update(
            state=PoolEntry.State.DISCARDING
        )
        if taken:
            claimed = entry
            break
    if claimed is not None:
        PoolEntry.objects.filter(pk=claimed.pk).delete()
        for name in ("stack_name", "directory", "preview_port", "agent_port", "agent_password"):
            setattr(project, name, getattr(claimed, name))
        project.save(
            update_fields=[
                "stack_name",
                "directory",
                "preview_port",
                "agent_port",
                "agent_password",
            ]
        )
        log.info("pool.claimed", project_id=project.id, stack=claimed.stack_name)
    request_refill()
    return claimed


def request_refill() -> Job | None:
    """Queue `pool.fill` unless one is queued or running already (its dedupe key); None
    when the pool is off."""
    if not pool_size():
        return None
    return jobqueue.enqueue(
        FILL, {}, dedupe_key=FILL, serial_key=SERIAL_KEY, priority=FILL_PRIORITY
    )


# --- Refill and discard (worker) -------------------------------------------------------------


@job_handler(FILL, max_attempts=3)
def fill(ctx: JobContext) -> None:
    """Start one warm stack when the pool is short, then queue the next refill if it still
    is. A failed warm-up removes what it built (stack, files, row) before the error goes
    to the queue's retries; a worker killed mid-way leaves an entry `starting` that
    `maintain` discards."""
    size = pool_size()
    if not size or PoolEntry.objects.live().count() >= size:
        return
    try:
        fingerprint = current_fingerprint()
    except StackError:
        ctx.log("Docker Engine unreachable: the pool waits for it")
        ctx.reschedule(ENGINE_WAIT_SECONDS)
    entry = PoolEntry.objects.create(fingerprint=fingerprint, job_id=ctx.job.pk)
    structlog.contextvars.bind_contextvars(pool_entry=entry.id)
    started = time.monotonic()
    try:
        _warm_up(ctx, entry)
    except BaseException:
        _discard_quietly(entry)
        raise
    ctx.log("warm stack ready", entry=entry.id, seconds=round(time.monotonic() - started, 1))
    if PoolEntry.objects.live().count() < size:
        ctx.enqueue(FILL, {}, dedupe_key=FILL, priority=FILL_PRIORITY)


def _warm_up(ctx: JobContext, entry: PoolEntry) -> None:
    """Scaffold, allocate ports, render (no provider, no model, no token), `up`; wait for
    the preview, request its page once (the dev server's first compile), wait for the
    agent; then the entry is `ready`."""
    scaffold_site(entry)
    ports.allocate_ports(entry)
    runtime.render_stack(entry)
    ctx.throw_if_cancel_requested()
    runtime.stack_up(entry)
    deadline = time.monotonic() + settings.DOCE_READY_TIMEOUT_SECONDS
    _wait_for(ctx, "preview", lambda: runtime.preview_answers(entry), deadline)
    _first_compile(entry)
    _wait_for(ctx, "agent", lambda: runtime.agent_answers(entry), deadline)
    ready = PoolEntry.objects.filter(pk=entry.pk, state=PoolEntry.State.STARTING).update(
        state=PoolEntry.State.READY, ready_at=timezone.now()
    )
    if not ready:  # discarded meanwhile (template or images changed, pool shrunk)
        raise PermanentJobError("The warm stack was discarded while it started.")


def _wait_for(ctx: JobContext, service: str, answers: Callable[[], bool], deadline: float) -> None:
    while not answers():
        if time.monotonic() > deadline:
            raise PermanentJobError(f"The warm stack's {service} did not answer.")
        ctx.throw_if_cancel_requested()
        time.sleep(PROBE_INTERVAL_SECONDS)


def _first_compile(entry: PoolEntry) -> None:
    """Request the preview's page once: the dev server compiles it, so the first visitor
    after a claim gets it at once. A slow or failed compile is not fatal (the page
    compiles on the first real visit instead)."""
    url = f"http://{ports.PREVIEW_ADDRESS}:{entry.preview_port}/"
    try:
        httpx.get(url, timeout=COMPILE_TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        log.warning("pool.compile_failed", error=exc.__class__.__name__)


@job_handler(DISCARD, payload=EntryPayload, max_attempts=5)
def discard(ctx: JobContext) -> None:
    """Take a pool entry's stack down with its volumes, remove its files and ports, delete
    the row. Safe to re-run; an entry already gone (claimed or discarded) is a success."""
    entry = PoolEntry.objects.filter(pk=ctx.payload.entry_id).first()
    if entry is None or entry.state != PoolEntry.State.DISCARDING:
        return
    remove_entry(entry)
    ctx.log("warm stack discarded", entry=entry.id)


def remove_entry(entry: PoolEntry) -> None:
    """Stack down (volumes too), files removed, row deleted. Raises `StackError`."""
    runtime.stack_down(entry, delete=True)
    runtime.delete_files(entry)
    PoolEntry.objects.filter(pk=entry.pk).delete()


def _discard_quietly(entry: PoolEntry) -> None:
    try:
        remove_entry(entry)
    except Exception as exc:  # maintain() finds what is left and discards it through a job
        log.warning("pool.discard_failed", entry=entry.id, error=exc.__class__.__name__)
        PoolEntry.objects.filter(pk=entry.pk).update(state=PoolEntry.State.DISCARDING)


def discard_entries(entries, why: str) -> int:
    """Mark `entries` for removal (compare-and-set from the state read: a claim that came
    first wins) and queue a `pool.discard` for each; returns how many."""
    count = 0
    for entry in entries:
        with transaction.atomic():
            if entry.state != PoolEntry.State.DISCARDING:
                moved = PoolEntry.objects.filter(pk=entry.pk, state=entry.state).update(
                    state=PoolEntry.State.DISCARDING
                )
                if not moved:
                    continue
            jobqueue.enqueue(
                DISCARD,
                {"entry_id": entry.id},
                dedupe_key=f"{DISCARD}:{entry.id}",
                serial_key=SERIAL_KEY,
            )
        log.info("pool.discard", entry=entry.id, why=why)
        count += 1
    return count


def maintain() -> dict:
    """Keep the pool true to its size and to the current template and images (the worker
    runs it every 30 s; see the module docstring). Returns what it did, by reason."""
    if not pool_size() and not PoolEntry.objects.exists():
        return {}
    try:
        fingerprint = current_fingerprint()
        stacks = list_stacks()
    except StackError as exc:
        if exc.failure.kind != FailureKind.ENGINE_UNREACHABLE:
            raise
        return {"engine": "unreachable"}
    entries = list(PoolEntry.objects.all())
    building = set(
        Job.objects.filter(type=FILL, state=JobState.RUNNING).values_list("pk", flat=True)
    )
    reasons: dict[str, list[PoolEntry]] = {
        "pending": [],
        "stale": [],
        "gone": [],
        "abandoned": [],
        "excess": [],
    }
    kept = []
    for entry in entries:
        stack = stacks.get(entry.stack_name)
        if entry.state == PoolEntry.State.DISCARDING:
            reasons["pending"].append(entry)
        elif entry.fingerprint != fingerprint:
            reasons["stale"].append(entry)
        elif entry.state == PoolEntry.State.READY and (stack is None or not stack.running):
            reasons["gone"].append(entry)
        elif entry.state == PoolEntry.State.STARTING and entry.job_id not in building:
            reasons["abandoned"].append(entry)
        else:
            kept.append(entry)
    # The newest go first when the pool is larger than its size (the setting was lowered).
    kept.sort(key=lambda entry: entry.created_at)
    reasons["excess"] = kept[pool_size() :]
    done = {why: discard_entries(found, why) for why, found in reasons.items()}
    if len(kept) - len(reasons["excess"]) < pool_size():
        request_refill()
    return done
