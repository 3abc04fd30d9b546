"""The scripted model: an OpenAI-compatible server that plays per-test scripts.

It drives the real OpenCode agent without a paid model (integration tests, end-to-end tests,
benchmarks). Script format and selection: `tests.scripted_model.scripts`. Use it:

- in-process: `ScriptedModelServer(host="127.0.0.1", port=0).start()` → `.base_url`,
  `.stop()`; the pytest fixture `scripted_model` (session scope) in
  `tests.scripted_model.fixtures` gives one shared server;
- standalone: `python -m tests.scripted_model --host 0.0.0.0 --port 18080 [--script text]`
  (an agent container reaches it at `http://<docker host gateway>:18080/v1`).

`opencode_provider_config(base_url)` returns the `opencode.json` fragment that points
OpenCode at it (provider `scripted`, model `scripted/scripted`).
"""

from tests.scripted_model.scripts import SCRIPTS, Context, split_marker
from tests.scripted_model.server import MODEL_ID, PROVIDER_ID, ScriptedModelServer


def opencode_provider_config(base_url: str) -> dict:
    """Return `opencode.json` keys (`provider`, `model`, `small_model`) for this model at
    `base_url` (e.g. `http://127.0.0.1:18080/v1`)."""
    model = f"{PROVIDER_ID}/{MODEL_ID}"
    return {
        "provider": {
            PROVIDER_ID: {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Scripted model",
                "options": {"baseURL": base_url, "apiKey": "scripted-not-a-secret"},
                # Takes images (attachments reach it as image parts); a known context window
                # (the chat's context usage).
                "models": {
                    MODEL_ID: {
                        "name": "Scripted",
                        "attachment": True,
                        "modalities": {"input": ["text", "image"], "output": ["text"]},
                        "limit": {"context": 128000, "output": 8000},
                    }
                },
            }
        },
        "model": model,
        "small_model": model,
    }


__all__ = [
    "MODEL_ID",
    "PROVIDER_ID",
    "SCRIPTS",
    "Context",
    "ScriptedModelServer",
    "opencode_provider_config",
    "split_marker",
]
