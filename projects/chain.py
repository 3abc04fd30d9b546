"""The project job chain, declared once: each step's job type, the label users see, the step
that follows it, and what retrying it means.

Everything else reads this table: the handlers (`projects.jobs`) register under these type
names and queue `Step.then` on success; the workspace's setup checklist
(`projects.presenters.setup_checklist`) shows `CREATE_CHAIN` with each `Step.label` (the
browser gets the labels in the page, not a copy); `services.stop_project` cancels the queued
steps with `stop_cancels`; `services.retry_step` moves the project to `retry_status`.

    project.create → docker.composeUp → docker.waitReady → opencode.waitReady
                   → opencode.sessionCreate → opencode.sendUserPrompt
                   → opencode.awaitIdle                                    (create)
    project.adopt → opencode.waitReady → (as above)            (create on a claimed warm stack)
    docker.ensureRunning → docker.waitReady → opencode.waitReady (→ …)     (start, wake)
    docker.restartPreview → docker.waitReady                               (restart preview)
    docker.stop, docker.stopAgent, project.delete                          (one step each)
    opencode.reconfigure    (a provider changed: new agent config, agent restarted when idle)

A create that claimed a warm pool entry (`projects.pool`) starts with `project.adopt` instead:
the stack already runs, so it gives the agent the owner's config and shows the preview.

Readiness is per service: `docker.waitReady` waits for the preview only and makes the project
`running` (viewable) at once; `opencode.waitReady` waits for the agent (`Project.agent_state`
starting → ready) and then hands over the prompt. `docker.stopAgent` puts an idle agent to
sleep (the preview stays up); the next prompt wakes it through `docker.ensureRunning`.

Type names are the seeds' (the upstream job names), so logs and the queue monitor read the
same in both systems. All steps of a project share the serial key `project:<id>`.
"""

from __future__ import annotations

from dataclasses import dataclass

from projects.models import Project

CREATE = "project.create"
ADOPT = "project.adopt"
COMPOSE_UP = "docker.composeUp"
ENSURE_RUNNING = "docker.ensureRunning"
WAIT_READY = "docker.waitReady"
AGENT_WAIT_READY = "opencode.waitReady"
SESSION_CREATE = "opencode.sessionCreate"
SEND_PROMPT = "opencode.sendUserPrompt"
AWAIT_IDLE = "opencode.awaitIdle"
STOP = "docker.stop"
STOP_AGENT = "docker.stopAgent"
RESTART_PREVIEW = "docker.restartPreview"
DELETE = "project.delete"
RECONFIGURE_AGENT = "opencode.reconfigure"


@dataclass(frozen=True)
class Step:
    """One step: `type` (the job type), `label` (shown to the user), `then` (the type a
    success queues next; None ends the chain, and a handler may end it early, e.g. a prompt
    already sent), `retry_status` (the project status a user's "retry this step" moves to
    first; None leaves it), `stop_cancels` (a stop cancels this step while it is queued:
    it would bring the stack up again)."""

    type: str
    label: str
    then: str | None = None
    retry_status: str | None = None
    stop_cancels: bool = False


STEPS: dict[str, Step] = {
    step.type: step
    for step in (
        Step(CREATE, "Create the project's files", COMPOSE_UP, Project.Status.STARTING),
        Step(ADOPT, "Take a warm stack", AGENT_WAIT_READY, Project.Status.STARTING, True),
        Step(COMPOSE_UP, "Start the containers", WAIT_READY, Project.Status.STARTING, True),
        Step(ENSURE_RUNNING, "Start the project", WAIT_READY, Project.Status.STARTING, True),
        Step(WAIT_READY, "Wait for the preview", AGENT_WAIT_READY, Project.Status.STARTING, True),
        Step(AGENT_WAIT_READY, "Wait for the agent", SESSION_CREATE, stop_cancels=True),
        Step(SESSION_CREATE, "Open an agent session", SEND_PROMPT),
        Step(SEND_PROMPT, "Hand your prompt to the agent", AWAIT_IDLE),
        Step(AWAIT_IDLE, "The agent builds your site"),
        Step(STOP, "Stop the project", retry_status=Project.Status.STOPPING),
        Step(STOP_AGENT, "Let the idle agent sleep"),
        Step(
            RESTART_PREVIEW,
            "Restart the preview",
            WAIT_READY,
            Project.Status.STARTING,
        ),
        Step(DELETE, "Delete the project", retry_status=Project.Status.DELETING),
        Step(RECONFIGURE_AGENT, "Give the agent the current providers"),
    )
}


def _follow(first: str) -> tuple[str, ...]:
    types = [first]
    while (after := STEPS[types[-1]].then) is not None and after not in types:
        types.append(after)
    return tuple(types)


# The chain that takes a new project from nothing to an agent answering its prompt.
CREATE_CHAIN: tuple[str, ...] = _follow(CREATE)
# The same for a project that claimed a warm stack (`projects.pool.claim`).
WARM_CREATE_CHAIN: tuple[str, ...] = _follow(ADOPT)


def create_chain(first_type: str | None) -> tuple[str, ...]:
    """The create chain that starts with job type `first_type` (`WARM_CREATE_CHAIN` after
    a claim, else `CREATE_CHAIN`)."""
    return WARM_CREATE_CHAIN if first_type == ADOPT else CREATE_CHAIN


# Queued steps a stop cancels (they would bring the stack up again).
STOP_CANCELS: tuple[str, ...] = tuple(t for t, step in STEPS.items() if step.stop_cancels)
