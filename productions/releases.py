"""Rules about releases' files: the content hash that names them, their size, which ones
retention removes, and the pool of hashed assets the edge falls back to.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Protocol, TypeVar

_CHUNK = 1024 * 1024


def _files(root: Path) -> list[tuple[str, Path]]:
    """Every file and symlink under `root` as (relative POSIX path, path), sorted by path."""
    found: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(root):
        base = Path(folder)
        # A symlinked directory is recorded as a link, never followed.
        links = [d for d in dirs if (base / d).is_symlink()]
        dirs[:] = [d for d in dirs if d not in links]
        for name in (*files, *links):
            path = base / name
            found.append((path.relative_to(root).as_posix(), path))
    found.sort(key=lambda item: item[0].encode("utf-8", "surrogateescape"))
    return found


def content_hash(root: Path) -> str:
    """The SHA-256 (64 hex chars) of the build output under `root`.

    Covers each file's relative path and bytes (a symlink: its target text), in sorted path
    order, so the result does not depend on the order the file system lists entries and
    changes when a file is renamed or moved. Empty directories do not count. Raises
    `OSError` when a file cannot be read.
    """
    digest = hashlib.sha256()
    for relative, path in _files(root):
        name = relative.encode("utf-8", "surrogateescape")
        if path.is_symlink():
            target = os.readlink(path).encode("utf-8", "surrogateescape")
            digest.update(b"L" + len(name).to_bytes(8, "big") + name)
            digest.update(len(target).to_bytes(8, "big") + target)
            continue
        digest.update(b"F" + len(name).to_bytes(8, "big") + name)
        digest.update(path.stat().st_size.to_bytes(8, "big"))
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def tree_size(root: Path) -> int:
    """The total size in bytes of the files under `root` (symlinks not followed)."""
    return sum(path.lstat().st_size for _, path in _files(root))


class _Retained(Protocol):
    release_id: str


R = TypeVar("R", bound=_Retained)


def choose_pruned(releases: Sequence[R], keep: int, *, protected: Iterable[str] = ()) -> list[R]:
    """The releases retention removes: all but the newest `keep` of `releases` (given newest
    first, pruned ones left out), never one whose id is in `protected` (the live release, the
    one being built or activated). `keep` below 1 counts as 1."""
    keep = max(1, keep)
    spared = set(protected)
    return [r for r in releases[keep:] if r.release_id not in spared]


# Astro's content-hashed build assets (`build.assets`, default `_astro`): a file's name
# carries a hash of its contents, so one name is one content in every release.
ASSET_FOLDER = "_astro"


def pool_assets(release_dir: Path, pool: Path) -> int:
    """Hard-link the hashed assets of the release in `release_dir` (`<release>/_astro/*`,
    top level) into `pool/_astro/`, keeping names that are there already. The edge serves
    the pool for asset requests the live release lacks, so a page loaded from the previous
    release still gets its own scripts and styles after a switch. Returns the files added.
    Raises `OSError` when the pool cannot be written (a copy is made where a link cannot)."""
    source = release_dir / ASSET_FOLDER
    if not source.is_dir():
        return 0
    target = pool / ASSET_FOLDER
    target.mkdir(parents=True, exist_ok=True)
    added = 0
    for path in source.iterdir():
        if not path.is_file() or path.is_symlink() or (target / path.name).exists():
            continue
        try:
            os.link(path, target / path.name)
        except OSError:
            shutil.copy2(path, target / path.name)
        added += 1
    return added


def prune_pool(pool: Path, retained_dirs: Iterable[Path]) -> int:
    """Remove from `pool/_astro/` every asset no retained release (`retained_dirs`, their
    folders) still has. Returns the files removed."""
    target = pool / ASSET_FOLDER
    if not target.is_dir():
        return 0
    kept: set[str] = set()
    for folder in retained_dirs:
        with suppress(OSError):
            kept.update(p.name for p in (folder / ASSET_FOLDER).iterdir())
    removed = 0
    for path in target.iterdir():
        if path.name not in kept:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
