"""Where a project's agent answers, and clients for it.

The agent container publishes OpenCode's port on `DOCE_AGENT_HOST` (127.0.0.1) at the
project's `agent_port`, protected by the project's `agent_password` (basic auth, user
`opencode`). Tests point a project at a host-run OpenCode by setting those two fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from doce.opencode.client import OpencodeClient, client_for


@dataclass(frozen=True)
class AgentTarget:
    """How to reach one project's agent: address, password and the current session id."""

    base_url: str
    password: str
    session_id: str = ""


def agent_base_url(project) -> str | None:
    """`http://<DOCE_AGENT_HOST>:<agent_port>`, or None while no port is allocated."""
    if not project.agent_port:
        return None
    return f"http://{settings.DOCE_AGENT_HOST}:{int(project.agent_port)}"


def agent_target(project) -> AgentTarget | None:
    """The project's `AgentTarget`, or None while it has no agent address."""
    base_url = agent_base_url(project)
    if base_url is None:
        return None
    return AgentTarget(base_url, project.agent_password, project.agent_session_id or "")


def client_for_project(project) -> OpencodeClient | None:
    """The cached sync client of the project's agent, or None without an address."""
    base_url = agent_base_url(project)
    return None if base_url is None else client_for(base_url, project.agent_password)
