"""Helpers for tests of the agent integration: recordings and event bookkeeping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from doce.opencode.models import MessageWithParts

RECORDINGS = Path(__file__).resolve().parent.parent / "fixtures" / "opencode_events"


def recording(name: str) -> list[dict[str, Any]]:
    """The upstream events of recording `name` (see scripts/record_opencode_events.py)."""
    lines = (RECORDINGS / f"{name}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def messages_from_events(events: list[dict[str, Any]]) -> list[MessageWithParts]:
    """What `GET /session/{id}/message` would answer after `events`: the last state of
    every message and part, in order of first appearance."""
    infos: dict[str, dict] = {}
    parts: dict[str, dict[str, dict]] = {}
    for event in events:
        props = event.get("properties") or {}
        if event["type"] == "message.updated":
            infos[props["info"]["id"]] = props["info"]
            parts.setdefault(props["info"]["id"], {})
        elif event["type"] == "message.part.updated":
            part = props["part"]
            parts.setdefault(part["messageID"], {})[part["id"]] = part
    return [
        MessageWithParts.model_validate({"info": infos[mid], "parts": list(parts[mid].values())})
        for mid in infos
    ]


def texts_by_message(events: list[dict[str, Any]]) -> dict[str, str]:
    """Replay `chat.message.part.added` events like a browser: deltas append, `text`
    replaces; returns each message's parts joined (as the final event joins them)."""
    parts: dict[str, dict[str, str]] = {}
    for event in events:
        if event["type"] != "chat.message.part.added":
            continue
        payload = event["payload"]
        texts = parts.setdefault(payload["messageId"], {})
        if "text" in payload:
            texts[payload["partId"]] = payload["text"]
        else:
            texts[payload["partId"]] = texts.get(payload["partId"], "") + payload["deltaText"]
    return {
        mid: "\n\n".join(t.strip() for t in texts.values() if t.strip())
        for mid, texts in parts.items()
    }


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [event for event in events if event["type"] == kind]
