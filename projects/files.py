"""A project's site files as users see them: a read-only tree, assets, and a zip export.

Every path from a user goes through `resolve_in_site`, which refuses anything that would
leave the project's `site/` directory: absolute paths, `..`, NUL bytes, encoded traversal
(callers pass decoded paths; `%2e%2e` arrives here as `..`), and symlinks whose target lies
outside; and anything longer than the file system takes (a name over 255 bytes, a path over
4,096). Errors are `FileAccessError` with a message fit for users.

The agent writes the site, so names are whatever a shell can make: a name that is not
UTF-8 (`bad\xffname.txt`) cannot be shown, linked or put in a zip, and is skipped by the
tree, the assets list and the export.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from pygments import highlight
from pygments.formatters import HtmlFormatter

from doce.highlight import lexer_for_filename
from projects.models import Project

# Directories that are generated, huge or private: hidden from the tree and the export.
HIDDEN_DIRS = frozenset({"node_modules", ".git", "dist", ".astro", ".doce", ".cache", ".npm"})
# Files that may hold secrets: never listed, shown or exported.
SECRET_FILE_PATTERNS = (
    re.compile(r"^\.env(\..*)?$"),
    re.compile(r".*\.(pem|key|p12|pfx)$", re.IGNORECASE),
    re.compile(r"^\.npmrc$"),
    re.compile(r"^\.doce-internal-token$"),
)
MAX_TREE_ENTRIES = 2000
# Linux's NAME_MAX and PATH_MAX (bytes): longer paths fail with ENAMETOOLONG.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
MAX_VIEW_BYTES = 512 * 1024

PUBLIC_DIR = "public"
MAX_ASSET_BYTES = 10 * 1024 * 1024
ASSET_EXTENSIONS = frozenset(
    {
        ".png", ".jpg", ".jpeg", ".gif", ".webp", ".avif", ".svg", ".ico",
        ".woff", ".woff2", ".ttf", ".otf",
        ".pdf", ".mp4", ".webm", ".mp3", ".ogg", ".wav",
        ".txt", ".json", ".csv", ".xml", ".webmanifest",
    }
)  # fmt: skip


class FileAccessError(Exception):
    """A path or file a user asked for cannot be used; the message says why."""


@dataclass(frozen=True)
class TreeEntry:
    """One listed file or directory: POSIX `path` relative to `site/`, `depth` from 0."""

    path: str
    name: str
    is_dir: bool
    depth: int
    size: int

    @property
    def stem(self) -> str:
        """The name without its extension (what the Assets tab lets a user rename)."""
        return PurePosixPath(self.name).stem

    @property
    def extension(self) -> str:
        """The extension with its dot, lowercase (kept by a rename), or ""."""
        return PurePosixPath(self.name).suffix.lower()


def is_secret_file(name: str) -> bool:
    return any(p.match(name) for p in SECRET_FILE_PATTERNS)


def resolve_in_site(project: Project, relative: str, *, base: str = "") -> Path:
    """Return the absolute path of `relative` inside the site (optionally under `base`).

    Raises `FileAccessError` for absolute paths, NUL bytes, `..` segments, hidden/secret
    names, names or paths too long for the file system, symlink loops, and anything
    (symlinks included) that resolves outside the site directory.
    """
    if "\x00" in relative or "\\" in relative:
        raise FileAccessError("That path is not allowed.")
    pure = PurePosixPath(relative)
    if len(relative.encode(errors="replace")) > MAX_PATH_BYTES or any(
        len(part.encode(errors="replace")) > MAX_NAME_BYTES for part in pure.parts
    ):
        raise FileAccessError("That path is too long.")
    if pure.is_absolute() or any(part in ("..", "") for part in pure.parts if part != "."):
        raise FileAccessError("That path is not allowed.")
    parts = [p for p in pure.parts if p != "."]
    if any(p in HIDDEN_DIRS or is_secret_file(p) for p in parts):
        raise FileAccessError("That file is not available.")
    try:
        root = (project.site_dir / base).resolve()
        candidate = (root.joinpath(*parts)).resolve()
    except RuntimeError:  # a symlink loop (the agent can make one); Python 3.11 raises this
        raise FileAccessError("That path is not allowed.") from None
    if candidate != root and root not in candidate.parents:
        raise FileAccessError("That path is not allowed.")
    site_root = project.site_dir.resolve()
    if candidate != site_root and site_root not in candidate.parents:
        raise FileAccessError("That path is not allowed.")
    return candidate


def list_tree(project: Project, limit: int = MAX_TREE_ENTRIES) -> tuple[list[TreeEntry], bool]:
    """The site's files, directories first, depth-first; returns (entries, truncated)."""
    root = project.site_dir
    entries: list[TreeEntry] = []
    if not root.is_dir():
        return entries, False
    for entry in _walk(root, root, 0):
        if len(entries) >= limit:
            return entries, True
        entries.append(entry)
    return entries, False


def _walk(root: Path, directory: Path, depth: int) -> Iterator[TreeEntry]:
    try:
        children = sorted(os.scandir(directory), key=lambda e: (not e.is_dir(), e.name.lower()))
    except OSError:
        return
    for child in children:
        if child.is_symlink() or child.name in HIDDEN_DIRS or is_secret_file(child.name):
            continue
        if not _utf8(child.name):
            continue
        path = Path(child.path)
        relative = path.relative_to(root).as_posix()
        if child.is_dir():
            yield TreeEntry(relative, child.name, True, depth, 0)
            yield from _walk(root, path, depth + 1)
        elif child.is_file():
            yield TreeEntry(relative, child.name, False, depth, child.stat().st_size)


def _utf8(name: str) -> bool:
    """Whether a name read from the disk is UTF-8 (`os` decodes other bytes to surrogates)."""
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class FileView:
    """A file prepared for display: highlighted HTML, or why it is not shown."""

    path: str
    size: int
    html: str = ""
    notice: str = ""


def view_file(project: Project, relative: str) -> FileView:
    """Read a site file for the Files tab, highlighted with pygments (CSS classes `hl`).

    Binary and oversized (> 512 KiB) files get a notice instead of content. Raises
    `FileAccessError` for disallowed or missing paths.
    """
    path = resolve_in_site(project, relative)
    if not path.is_file():
        raise FileAccessError("No such file.")
    size = path.stat().st_size
    shown = path.relative_to(project.site_dir.resolve()).as_posix()
    if size > MAX_VIEW_BYTES:
        return FileView(shown, size, notice="This file is too large to show here.")
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        return FileView(shown, size, notice="Binary file: not shown.")
    text = data.decode("utf-8", errors="replace")
    lexer = lexer_for_filename(path.name)
    formatter = HtmlFormatter(cssclass="hl", linenos="table", wrapcode=True)
    return FileView(shown, size, html=highlight(text, lexer, formatter))


# --- Assets ----------------------------------------------------------------------------------


def sanitize_asset_name(filename: str) -> str:
    """A safe file name: ASCII letters, digits, `.`, `_`, `-`; lowercase extension.

    Raises `FileAccessError` when nothing usable remains or the type is not allowed.
    """
    base = PurePosixPath(filename.replace("\\", "/")).name
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    ext = ("." + ext.lower()) if ext else ""
    if ext not in ASSET_EXTENSIONS:
        allowed = ", ".join(sorted(e.lstrip(".") for e in ASSET_EXTENSIONS))
        raise FileAccessError(f"That file type is not allowed. Allowed: {allowed}.")
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-.")[:80]
    if not stem:
        raise FileAccessError("Give the file a name made of letters or digits.")
    return stem + ext


def _public_dir(project: Project) -> Path:
    """The site's `public/` folder. Raises `FileAccessError` when it is a symlink: the agent
    writes the site and could point it anywhere on the host."""
    public = project.site_dir / PUBLIC_DIR
    if public.is_symlink():
        raise FileAccessError("The site's public folder is a link; assets can't be managed.")
    return public


def list_assets(project: Project) -> list[TreeEntry]:
    """Files directly or nested in the site's `public/` folder (where uploads go); none when
    that folder is missing or a symlink."""
    try:
        public = _public_dir(project)
    except FileAccessError:
        return []
    if not public.is_dir():
        return []
    return [
        TreeEntry(f"{PUBLIC_DIR}/{e.path}", e.name, e.is_dir, e.depth, e.size)
        for e in _walk(public, public, 0)
        if not e.is_dir
    ]


def save_asset(project: Project, upload: UploadedFile) -> str:
    """Store an upload in `public/` under a sanitized, non-clashing name; returns its path.

    Raises `FileAccessError` for a disallowed type or a file over 10 MiB.
    """
    if upload.size is not None and upload.size > MAX_ASSET_BYTES:
        raise FileAccessError("That file is larger than 10 MB.")
    name = sanitize_asset_name(upload.name or "")
    _public_dir(project).mkdir(parents=True, exist_ok=True)
    target = _free_name(resolve_in_site(project, name, base=PUBLIC_DIR))
    with target.open("xb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return target.relative_to(project.site_dir.resolve()).as_posix()


def _free_name(path: Path) -> Path:
    if not path.exists():
        return path
    for n in range(1, 1000):
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise FileAccessError("Too many files with that name.")


def _asset_path(project: Project, relative: str) -> Path:
    if not relative.startswith(PUBLIC_DIR + "/"):
        raise FileAccessError("Only files in public/ can be changed here.")
    path = resolve_in_site(project, relative.removeprefix(PUBLIC_DIR + "/"), base=PUBLIC_DIR)
    # `path` is resolved: a link must be checked by the name given, or its target would be
    # renamed or deleted instead (links are not listed as assets).
    if not path.is_file() or (project.site_dir / PurePosixPath(relative)).is_symlink():
        raise FileAccessError("No such asset.")
    return path


def rename_asset(project: Project, relative: str, new_name: str) -> str:
    """Rename an asset within its folder, keeping its extension: `new_name` may end in the
    same extension or none (`logo` and `logo.svg` both rename `favicon.svg` to `logo.svg`).
    Returns the new path (`public/…`). Raises `FileAccessError` for another extension
    (`evil.png` for an SVG: the type a page links to must not change under it) or a name
    with nothing usable left."""
    path = _asset_path(project, relative)
    target = path.with_name(sanitize_asset_name(_with_extension(new_name, path.suffix.lower())))
    if target.exists():
        raise FileAccessError("A file with that name already exists.")
    path.rename(target)
    return target.relative_to(project.site_dir.resolve()).as_posix()


def _with_extension(new_name: str, extension: str) -> str:
    """`new_name` ending in `extension` (lowercase, with its dot); `FileAccessError` when it
    ends in another one."""
    base = PurePosixPath(new_name.replace("\\", "/")).name.strip()
    stem, dot, typed = base.rpartition(".")
    if dot and stem and "." + typed.lower() != extension:
        raise FileAccessError(
            f"Renaming keeps the file type: use a name ending in {extension}, or no extension."
        )
    return (stem if dot and stem else base) + extension


def delete_asset(project: Project, relative: str) -> None:
    """Delete an asset from `public/`."""
    _asset_path(project, relative).unlink()


class LimitedUploadHandler(FileUploadHandler):
    """Stops reading an upload once it passes 10 MiB, so a huge body never reaches disk."""

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > MAX_ASSET_BYTES:
            # A flag for the view (read with getattr); HttpRequest declares no such field.
            self.request.upload_too_large = True  # type: ignore[union-attr]
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


# --- Export ------------------------------------------------------------------------------


def export_name(project: Project) -> str:
    """The export's folder and file name: the project name in ASCII letters, digits, `_` and
    `-` (a name stored before names were checked may hold anything), else the id."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", project.name).strip("-") or project.id


def export_zip(project: Project) -> tempfile.SpooledTemporaryFile:
    """The site as a zip (rewound, ready to stream): no node_modules, build output, VCS data,
    logs, or files that may hold secrets; symlinks are skipped. Paths are `<name>/…`.
    """
    spool = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)  # noqa: SIM115 (caller streams it)
    folder = export_name(project)
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        root = project.site_dir
        for entry in _walk(root, root, 0) if root.is_dir() else ():
            if not entry.is_dir:
                archive.write(root / entry.path, f"{folder}/{entry.path}")
    spool.seek(0)
    return spool
