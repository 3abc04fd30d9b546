"""`tarfile` with the extraction filters of PEP 706 (`extractall(..., filter="data")`) on
every Python doce runs on.

The standard module has them from Python 3.11.4. Debian 12 ships 3.11.2 (the doce image
built with `scripts/scale-up --offline` runs it), where `filter=` is an unknown argument;
there the `backports.tarfile` package (CPython 3.12's module, a dependency only on such
Pythons) stands in. Import `tarfile` from here wherever an archive is extracted.
"""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11, 4):
    import tarfile
else:
    from backports import tarfile  # type: ignore[import-not-found, no-redef]

__all__ = ["tarfile"]
