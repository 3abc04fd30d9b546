"""A web container's health check: `python -m doce.webslot_health`.

Exit 0 when this container's web slot (the port `manage.py serve --only web` wrote to
`WEB_PORT_FILE`) answers HTTP on loopback within 5 s — any status: a 503 from /healthz
means "degraded somewhere", not "this process is dead"; else exit 1. Imports no Django (a
check runs every few seconds, and must stay cheap).
"""

from __future__ import annotations

import http.client
import sys
import tempfile
from pathlib import Path

WEB_PORT_FILE = Path(tempfile.gettempdir()) / "doce-web-port"


def main() -> int:
    try:
        port = int(WEB_PORT_FILE.read_text().strip())
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/healthz", headers={"Host": "localhost"})
        connection.getresponse().read()
    except (OSError, ValueError, http.client.HTTPException) as exc:
        print(f"web slot not answering: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
