"""Reconciliation: compare the database with the stacks the Engine runs, and repair.

`reconcile()` lists this installation's containers by label (`dev.doce.instance`) and:

1. removes stacks that belong to no project and no warm pool entry (containers, network,
   volumes); a stack is known by its name (`Project.stack_name`, `PoolEntry.stack_name`);
2. marks `running` projects whose containers are all gone as `stopped`, with a reason;
3. reports `running` projects whose containers exist but are not all running (a crash, an
   Engine or host restart): the caller enqueues a start (`docker.ensureRunning`) for each
   of `needs_start`. A sleeping agent (`agent_state` stopped or stopping: idle stop) is
   meant to be stopped and is not counted;
4. (re)starts the `[app]` log followers of running stacks in this process, which is how
   followers come back after a worker restart.

Warm pool entries whose containers vanished are `projects.pool.maintain`'s to replace.
The worker calls it at start and every 30 s; `manage.py reconcile` runs it once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from doce.docker.failures import StackError
from doce.docker.stacks import follow_stack_logs, list_stacks, remove_stack
from projects.models import AgentState, IllegalTransition, PoolEntry, Project
from projects.services import set_status

GONE_REASON = (
    "The project's containers were removed outside doce. Open the project to start it again."
)
log = structlog.get_logger(__name__)


@dataclass
class ReconcileReport:
    """What one `reconcile()` pass did and found (lists of project ids).

    `removed`: orphan stacks removed; `marked_gone`: projects set to `stopped` because
    their containers vanished; `needs_start`: projects that should run but don't (enqueue
    a start for each); `followers_started`: log followers started in this process;
    `engine_error`: a user-facing message when the Engine was unreachable (then nothing
    else was done).
    """

    removed: list[str] = field(default_factory=list)
    marked_gone: list[str] = field(default_factory=list)
    needs_start: list[str] = field(default_factory=list)
    followers_started: int = 0
    engine_error: str = ""

    def as_dict(self) -> dict:
        return {
            "removed": self.removed,
            "marked_gone": self.marked_gone,
            "needs_start": self.needs_start,
            "followers_started": self.followers_started,
            "engine_error": self.engine_error,
        }


def reconcile(*, follow_logs: bool = True) -> ReconcileReport:
    """Run one reconciliation pass (see the module docstring). Never raises for Engine or
    per-stack failures: they are logged and reported.

    `follow_logs=False` skips step 4, for one-shot callers whose process ends right away.
    """
    report = ReconcileReport()
    try:
        stacks = list_stacks()
    except StackError as exc:
        report.engine_error = exc.failure.message
        return report

    # Pool entries first: a claim moves a stack from its entry to a project in one
    # transaction, so one of the two reads sees it whenever the claim commits.
    known = set(
        PoolEntry.objects.filter(stack_name__in=list(stacks)).values_list("stack_name", flat=True)
    )
    known.update(
        Project.objects.filter(stack_name__in=list(stacks)).values_list("stack_name", flat=True)
    )
    for project_id in sorted(set(stacks) - known):
        try:
            remove_stack(project_id)
        except StackError as exc:
            log.warning("reconcile_remove_failed", project_id=project_id, error=exc.failure.kind)
            continue
        report.removed.append(project_id)

    running = Project.objects.filter(status=Project.Status.RUNNING)
    for project in running.only("id", "status", "agent_state", "stack_name", "directory"):
        stack = stacks.get(project.stack_name)
        if stack is None or not stack.exists:
            if _mark_gone(project):
                report.marked_gone.append(project.id)
        elif not _runs_what_it_should(project, stack):
            report.needs_start.append(project.id)
        elif follow_logs:
            try:
                report.followers_started += follow_stack_logs(project.stack_name, project.logs_dir)
            except StackError:
                continue
    if report.removed or report.marked_gone or report.needs_start:
        log.info("reconciled", **report.as_dict())
    return report


def _runs_what_it_should(project: Project, stack) -> bool:
    preview = stack.containers.get("preview")
    if preview is None or not preview.running:
        return False
    if project.agent_state in (AgentState.STOPPED, AgentState.STOPPING):
        return True  # the agent sleeps on purpose (idle stop); a prompt wakes it
    return stack.running


def _mark_gone(project: Project) -> bool:
    # Only from the `running` we read: a start or stop that moved on in the meantime wins.
    try:
        set_status(project, Project.Status.STOPPED, GONE_REASON, from_={Project.Status.RUNNING})
    except (IllegalTransition, Project.DoesNotExist):
        return False
    return True
