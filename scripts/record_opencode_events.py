"""Record raw `/event` streams of the real, pinned OpenCode server for normalizer tests.

    .venv/bin/python scripts/record_opencode_events.py [--out tests/fixtures/opencode_events]
        [--scenario NAME ...]

Starts the scripted model and `opencode serve` (see `tests.opencode.harness`), then for each
scenario: creates a session, subscribes to `GET /event`, sends one prompt with the scenario's
script marker through `prompt_async`, and writes every upstream event (the JSON of each SSE
`data:` line, in arrival order) until the session is idle again to `<out>/<scenario>.jsonl`.
Temporary paths are replaced by `/work/project` so recordings are stable. Writes one JSON
summary line per scenario to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.opencode.harness import USERNAME, OpencodeServer, opencode_binary
from tests.scripted_model import ScriptedModelServer

# name -> (prompt text, seconds after which to abort, or None)
SCENARIOS: dict[str, tuple[str, float | None]] = {
    "write": ("[script:default] A bakery in Lisbon", None),
    "text": ("[script:text] Say hello", None),
    "reasoning": ("[script:reasoning] Think about tea", None),
    "tools": ("[script:tools] Keep notes", None),
    "tool_error": ("[script:tool-error] Edit a missing file", None),
    "provider_error": ("[script:provider-error] Anything", None),
    "abort": ("[script:slow] Count slowly", 1.5),
    "permission": ("[script:permission] Run a command", None),
    "question": ("[script:question] Ask me", None),
    "question_rejected": ("[script:question] Ask me, I will refuse", None),
    "todo": ("[script:todo] Plan it", None),
}
# The permission scenario's session asks before running shell commands.
ASK_BASH = [{"permission": "bash", "pattern": "*", "action": "ask"}]


def answer_requests(client: httpx.Client, base_url: str, event: dict, reject: bool) -> None:
    """Reply to a permission or question request the way a user in the chat would."""
    props = event.get("properties") or {}
    if event["type"] == "permission.asked":
        client.post(f"{base_url}/permission/{props['id']}/reply", json={"reply": "once"})
    elif event["type"] == "question.asked" and reject:
        client.post(f"{base_url}/question/{props['id']}/reject")
    elif event["type"] == "question.asked":
        answers = [[question["options"][0]["label"]] for question in props["questions"]]
        client.post(f"{base_url}/question/{props['id']}/reply", json={"answers": answers})


def record(
    base_url: str, password: str, name: str, prompt: str, abort_after: float | None
) -> list[dict]:
    auth = (USERNAME, password)
    events: list[dict] = []
    done = threading.Event()
    session_id: list[str] = []
    connected = threading.Event()

    def listen() -> None:
        busy_seen = False
        with (
            httpx.Client(auth=auth, timeout=httpx.Timeout(60, read=60)) as client,
            client.stream("GET", f"{base_url}/event") as response,
        ):
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:].strip())
                if event.get("type") == "server.connected":
                    connected.set()
                if event.get("type") == "server.heartbeat" and not session_id:
                    continue
                events.append(event)
                if event["type"] in ("permission.asked", "question.asked"):
                    answer_requests(client, base_url, event, reject=name == "question_rejected")
                props = event.get("properties") or {}
                if session_id and props.get("sessionID") == session_id[0]:
                    status = (props.get("status") or {}).get("type")
                    busy_seen = busy_seen or status == "busy"
                    if event["type"] == "session.idle" and busy_seen:
                        break
        done.set()

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    connected.wait(10)
    with httpx.Client(auth=auth, timeout=30) as client:
        body = {"permission": ASK_BASH} if name == "permission" else {}
        session = client.post(f"{base_url}/session", json=body).json()
        session_id.append(session["id"])
        response = client.post(
            f"{base_url}/session/{session['id']}/prompt_async",
            json={"parts": [{"type": "text", "text": prompt}]},
        )
        response.raise_for_status()
        if abort_after is not None:
            time.sleep(abort_after)
            client.post(f"{base_url}/session/{session['id']}/abort").raise_for_status()
    done.wait(60)
    # Let trailing updates (title, diff) of this session arrive before the next scenario.
    time.sleep(0.5)
    return events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/opencode_events"))
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    model = ScriptedModelServer().start()
    with tempfile.TemporaryDirectory(prefix="doce-record-") as tmp:
        server = OpencodeServer(opencode_binary(), model.base_url, Path(tmp)).start()
        try:
            for name in args.scenario or list(SCENARIOS):
                prompt, abort_after = SCENARIOS[name]
                events = record(server.base_url, server.password, name, prompt, abort_after)
                text = "\n".join(json.dumps(event, sort_keys=True) for event in events)
                text = text.replace(str(server.project_dir), "/work/project")
                text = text.replace(str(Path(tmp)), "/work")
                (args.out / f"{name}.jsonl").write_text(text + "\n")
                types = sorted({event["type"] for event in events})
                print(json.dumps({"scenario": name, "events": len(events), "types": types}))
        finally:
            server.stop()
            model.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
