"""Pydantic models of the OpenCode server API (version `doce.versions.OPENCODE_VERSION`).

Only the fields doce reads are declared; everything else is kept (`extra="allow"`) so a
newer server's additions never break parsing. Source: the server's own OpenAPI document
(`GET /doc`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Time(_Model):
    created: int = 0
    updated: int | None = None
    completed: int | None = None


class Session(_Model):
    """`Session`: id `ses_…`, the working directory, title and times (epoch ms)."""

    id: str
    directory: str = ""
    title: str = ""
    version: str = ""
    time: Time = Field(default_factory=Time)
    revert: dict[str, Any] | None = None


class SessionStatus(_Model):
    """`SessionStatus`: `idle`, `busy`, or `retry` (with `attempt`, `message`, `next` ms)."""

    type: Literal["idle", "busy", "retry"] | str
    attempt: int | None = None
    message: str | None = None
    next: int | None = None


class MessageInfo(_Model):
    """A user or assistant message (`Message`); `error` is set on failed assistant turns."""

    id: str
    sessionID: str = ""
    role: Literal["user", "assistant"] | str
    time: Time = Field(default_factory=Time)
    parentID: str | None = None
    error: dict[str, Any] | None = None
    finish: str | None = None
    modelID: str | None = None
    providerID: str | None = None


class Part(_Model):
    """One part of a message: `text`, `reasoning`, `tool`, `file`, `step-start`, …"""

    id: str
    messageID: str = ""
    sessionID: str = ""
    type: str
    text: str | None = None
    tool: str | None = None
    callID: str | None = None
    state: dict[str, Any] | None = None


class MessageWithParts(_Model):
    """An element of `GET /session/{id}/message`."""

    info: MessageInfo
    parts: list[Part] = Field(default_factory=list)


class ProviderModel(_Model):
    id: str
    name: str = ""


class Provider(_Model):
    id: str
    name: str = ""
    models: dict[str, ProviderModel] = Field(default_factory=dict)


class ProviderList(_Model):
    """`GET /provider`: every known provider, the connected ids, default model per provider."""

    all: list[Provider] = Field(default_factory=list)
    connected: list[str] = Field(default_factory=list)
    default: dict[str, str] = Field(default_factory=dict)


class Health(_Model):
    """What `GET /doc` says about the server (the OpenAPI `info` block)."""

    title: str = ""
    version: str = ""
