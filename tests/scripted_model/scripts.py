"""Named scripts the scripted model plays, and the context their text is filled from.

A **script** is a list of **turns**. A turn is what the model answers to one
`POST /v1/chat/completions` request of the main agent loop; it is a list of **steps**, played
in order into one streamed response:

- `{"type": "text", "text": str, "chunk": 12, "delay": 0.0}`: streams `delta.content` in
  pieces of `chunk` characters, `delay` seconds apart.
- `{"type": "reasoning", "text": str, "chunk": 12, "delay": 0.0}`: the same as
  `delta.reasoning_content`.
- `{"type": "tool", "name": str, "arguments": {...}}`: one `delta.tool_calls` entry
  (OpenCode tool names: `write`, `edit`, `bash`, `question`, `todowrite`, …); the turn then
  ends with `finish_reason: "tool_calls"`.
- `{"type": "sleep", "seconds": float}`: nothing for that long (a slow or stalled provider).
- `{"type": "error", "status": int, "message": str, "code": str}`: instead of a stream, an
  HTTP error with an OpenAI-style body `{"error": {"message", "type", "code"}}`; must be the
  turn's only step.

A turn without a `tool` step ends with `finish_reason: "stop"`, which ends OpenCode's loop.
Which turn answers a request: the number of assistant messages after the last user message in
the request (0 for the first answer, 1 after the first tool result, …). Past the last turn,
the model answers with the text `Done.`.

Strings in steps (and in tool arguments, recursively) are `string.Template` texts filled
from the request: `$prompt` (the latest user text without its script marker), `$heading`
(a short HTML-safe heading derived from it), `$slug` (lowercase words joined by `-`).

**Choosing a script:** the latest user message may carry a marker `[script:<name>]`; the
server's default script (`default` unless started with another) plays otherwise, so one
server serves many tests and projects at once. Title and summary requests OpenCode makes on
the side (requests without tools) get a short text answer and never consume a turn.
"""

from __future__ import annotations

import html
import re
import string
from dataclasses import dataclass
from typing import Any

Step = dict[str, Any]
Turn = list[Step]
Script = list[Turn]

MARKER = re.compile(r"\[script:([A-Za-z0-9_.\-]+)\]")

INDEX_PAGE = """---
const title = "$heading";
---
<html lang="en">
  <head><meta charset="utf-8" /><title>{title}</title></head>
  <body>
    <h1>$heading</h1>
  </body>
</html>
"""

ABOUT_PAGE = """---
---
<html lang="en">
  <head><meta charset="utf-8" /><title>About</title></head>
  <body>
    <h1>About: $heading</h1>
  </body>
</html>
"""

# A page whose script throws when it runs (the preview's runtime-error overlay).
BROKEN_PAGE = """---
---
<html lang="en">
  <head><meta charset="utf-8" /><title>Broken</title></head>
  <body>
    <h1>Broken page</h1>
    <script is:inline>throw new Error("scripted runtime failure");</script>
  </body>
</html>
"""

SCRIPTS: dict[str, Script] = {
    # Write the home page with a heading from the prompt, then say so.
    "default": [
        [
            {"type": "text", "text": "I'll create the home page for you."},
            {
                "type": "tool",
                "name": "write",
                "arguments": {"filePath": "src/pages/index.astro", "content": INDEX_PAGE},
            },
        ],
        [{"type": "text", "text": "Done: the home page now shows the heading “$heading”."}],
    ],
    # Three pages in parallel tool calls: home, /about and /broken (which throws in the
    # browser), then say so.
    "pages": [
        [
            {
                "type": "tool",
                "name": "write",
                "arguments": {"filePath": "src/pages/index.astro", "content": INDEX_PAGE},
            },
            {
                "type": "tool",
                "name": "write",
                "arguments": {"filePath": "src/pages/about.astro", "content": ABOUT_PAGE},
            },
            {
                "type": "tool",
                "name": "write",
                "arguments": {"filePath": "src/pages/broken.astro", "content": BROKEN_PAGE},
            },
        ],
        [{"type": "text", "text": "Done: three pages."}],
    ],
    # Rewrite /about with a heading from the prompt.
    "about": [
        [
            {
                "type": "tool",
                "name": "write",
                "arguments": {"filePath": "src/pages/about.astro", "content": ABOUT_PAGE},
            }
        ],
        [{"type": "text", "text": "Done: the about page is updated."}],
    ],
    # Plain text only, in small pieces, so deltas are many.
    "text": [
        [
            {
                "type": "text",
                "text": "Hello! This is a scripted answer about $heading, streamed in pieces.",
                "chunk": 5,
            }
        ]
    ],
    # Reasoning first, then text.
    "reasoning": [
        [
            {"type": "reasoning", "text": "The user wants $heading. Think briefly.", "chunk": 8},
            {"type": "text", "text": "Here is my answer about $heading."},
        ]
    ],
    # A write, then an edit of the same file, then a bash command, then the final text.
    "tools": [
        [
            {
                "type": "tool",
                "name": "write",
                "arguments": {"filePath": "notes.md", "content": "# $heading\n\nfirst line\n"},
            }
        ],
        [
            {
                "type": "tool",
                "name": "edit",
                "arguments": {
                    "filePath": "notes.md",
                    "oldString": "first line",
                    "newString": "edited line",
                },
            }
        ],
        [
            {
                "type": "tool",
                "name": "bash",
                "arguments": {"command": "cat notes.md", "description": "Show the notes"},
            }
        ],
        [{"type": "text", "text": "Wrote, edited and printed notes.md."}],
    ],
    # A tool call that fails (the edit's old text is not in the file).
    "tool-error": [
        [
            {
                "type": "tool",
                "name": "edit",
                "arguments": {
                    "filePath": "missing-file.md",
                    "oldString": "nothing",
                    "newString": "something",
                },
            }
        ],
        [{"type": "text", "text": "That edit failed."}],
    ],
    # A slow stream: 60 pieces 0.1 s apart (about 6 s), for abort and kill tests.
    "slow": [
        [
            {
                "type": "text",
                "text": " ".join(f"word{i:02d}" for i in range(60)),
                "chunk": 7,
                "delay": 0.1,
            }
        ]
    ],
    # A shell command; with a session rule `bash: ask` it raises a permission request.
    "permission": [
        [
            {
                "type": "tool",
                "name": "bash",
                "arguments": {"command": "echo permitted", "description": "Say permitted"},
            }
        ],
        [{"type": "text", "text": "The command ran."}],
    ],
    # OpenCode's question tool: the agent asks the user to choose.
    "question": [
        [
            {
                "type": "tool",
                "name": "question",
                "arguments": {
                    "questions": [
                        {
                            "question": "Which colour should the heading be?",
                            "header": "Colour",
                            "options": [
                                {"label": "Red", "description": "Warm and loud"},
                                {"label": "Blue", "description": "Calm and cool"},
                            ],
                        }
                    ]
                },
            }
        ],
        [{"type": "text", "text": "Thanks for choosing."}],
    ],
    # A todo list update.
    "todo": [
        [
            {
                "type": "tool",
                "name": "todowrite",
                "arguments": {
                    "todos": [
                        {
                            "content": "Write the home page",
                            "status": "completed",
                            "priority": "high",
                        },
                        {"content": "Add a footer", "status": "pending", "priority": "low"},
                    ]
                },
            }
        ],
        [{"type": "text", "text": "Planned the work."}],
    ],
    # The provider refuses the request (not retryable).
    "provider-error": [
        [
            {
                "type": "error",
                "status": 400,
                "message": "The model `scripted` does not support this request (scripted failure).",
                "code": "invalid_request_error",
            }
        ]
    ],
}


@dataclass(frozen=True)
class Context:
    """What a script's strings are filled from, derived from the latest user message."""

    prompt: str

    @property
    def heading(self) -> str:
        words = self.prompt.split()
        text = " ".join(words[:8]) or "Hello"
        if len(text) > 60:
            text = text[:60].rstrip()
        # Also safe inside the Astro frontmatter string literal.
        return html.escape(text, quote=True).replace("\\", "")

    @property
    def slug(self) -> str:
        return "-".join(re.findall(r"[a-z0-9]+", self.prompt.lower())[:6]) or "page"

    def fill(self, value: Any) -> Any:
        """Return `value` with `$prompt`, `$heading`, `$slug` filled in (recursively)."""
        if isinstance(value, str):
            return string.Template(value).safe_substitute(
                prompt=self.prompt, heading=self.heading, slug=self.slug
            )
        if isinstance(value, dict):
            return {key: self.fill(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.fill(item) for item in value]
        return value


def split_marker(text: str) -> tuple[str | None, str]:
    """Return (script name or None, text without the marker)."""
    match = MARKER.search(text)
    if match is None:
        return None, text.strip()
    return match.group(1), (text[: match.start()] + text[match.end() :]).strip()
