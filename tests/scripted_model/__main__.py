"""`python -m tests.scripted_model --host 0.0.0.0 --port 18080 [--script default]`.

Serves the scripted model until interrupted; prints one JSON line with its base URL first.
`--scripts-file FILE` adds scripts from a JSON object `{name: [turn, ...]}`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from tests.scripted_model.server import ScriptedModelServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.scripted_model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--script", default="default", help="script played without a marker")
    parser.add_argument("--require-key", help="answer 401 unless this Bearer key is sent")
    parser.add_argument("--scripts-file", type=Path, help="JSON {name: [turn, ...]} to add")
    args = parser.parse_args(argv)
    extra = json.loads(args.scripts_file.read_text()) if args.scripts_file else {}
    server = ScriptedModelServer(
        args.host, args.port, default_script="default", required_key=args.require_key
    )
    server.scripts.update(extra)
    if args.script not in server.scripts:
        parser.error(f"unknown script {args.script!r}; known: {', '.join(sorted(server.scripts))}")
    server.default_script = args.script
    print(json.dumps({"base_url": server.base_url, "script": args.script}), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
