"""A project's files: the site template copied into `site/`, its git history, and the
prewarmed dependencies that let a new project start without a network install.

The template is `projects/template/site/`: a small Astro starter, `AGENTS.md` (the agent's
instructions) and `opencode.json` (the agent's permissions). `prewarm()` installs its
dependencies once, in the preview image, into `DOCE_CACHE_DIR/prewarm/<lockfile hash>/`,
filling the shared npm cache on the way; that folder is the shared dependency store.

`scaffold_site()` gives a new project a `node_modules` whose files are hard links into the
store (its folders are the project's own): about 10k files cost a few MB of folders instead
of 225 MB, and every project's copy of a file is the same inode. That is safe because
nothing writes those files in place: npm installs, updates and removes a package by
extracting new files and renaming or deleting the old ones (it never opens an installed
file for writing), so the agent's `npm install <pkg>` in one project replaces that
project's links and leaves the store and every other project as they were. The one file
npm rewrites in place, `node_modules/.package-lock.json`, is a private copy in each
project. When the data and cache folders are on different file systems (no hard links),
the store is copied instead.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from doce.docker.oneoff import run_oneoff
from projects.models import StackFiles

TEMPLATE_DIR = Path(__file__).resolve().parent / "template" / "site"
GIT_IDENTITY = ["-c", "user.name=doce", "-c", "user.email=doce@localhost"]
PREWARM_TIMEOUT_S = 600
CA_MOUNT = "/etc/doce/extra-ca.pem"


class ScaffoldError(RuntimeError):
    """The project's files could not be created; the message says why."""


def template_lock_hash(site: Path = TEMPLATE_DIR) -> str:
    """16 hex chars identifying a site's locked dependencies (its package-lock.json)."""
    return hashlib.sha256((site / "package-lock.json").read_bytes()).hexdigest()[:16]


# The folder a site is assembled in before it is moved into place (inside the project's root).
STAGING_PREFIX = ".site-"


def prewarm_dir(lock_hash: str) -> Path:
    return Path(settings.DOCE_CACHE_DIR) / "prewarm" / lock_hash


def npm_cache_dir() -> Path:
    """The npm cache shared by preview containers (created on first use)."""
    path = Path(settings.DOCE_CACHE_DIR) / "npm"
    path.mkdir(parents=True, exist_ok=True)
    return path


def scaffold_site(project: StackFiles) -> bool:
    """Create `project.site_dir` (of a `Project` or a warm `PoolEntry`) from the template
    and commit it to a new git repository.

    The site is assembled in a temporary folder and moved into place at the end, so a
    failure leaves nothing half-written. Copies the prewarmed `node_modules` when one
    matches. Returns False (and changes nothing) when the site already exists. Raises
    `ScaffoldError`.
    """
    site = project.site_dir
    if site.exists():
        return False
    project.root_dir.mkdir(parents=True, exist_ok=True)
    project.logs_dir.mkdir(parents=True, exist_ok=True)
    # A worker killed mid-copy (SIGKILL, a lost host) leaves its staging folder behind, with
    # a copied `node_modules` (~200 MB). Only one job of a project runs at a time, so any
    # staging folder found now is such a leftover.
    for leftover in project.root_dir.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(leftover, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=project.root_dir))
    try:
        shutil.copytree(TEMPLATE_DIR, staging, dirs_exist_ok=True, symlinks=True)
        _git(staging, "init", "--quiet", "--initial-branch=main")
        _git(staging, "add", "--all")
        _git(
            staging,
            *GIT_IDENTITY,
            "commit",
            "--quiet",
            "--no-verify",
            "-m",
            "Start from the doce template",
        )
        _copy_prewarmed_modules(staging)
        os.rename(staging, site)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return True


def _git(cwd: Path, *args: str) -> None:
    try:
        subprocess.run([_tool("git"), *args], cwd=cwd, check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        stderr = getattr(exc, "stderr", b"") or b""
        raise ScaffoldError(
            f"git {args[0]} failed: {stderr.decode(errors='replace')[-300:]}"
        ) from None


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ScaffoldError(f"{name} is not installed on this host")
    return path


# Files of a project's `node_modules` that npm rewrites in place: never shared.
PRIVATE_MODULE_FILES = (".package-lock.json",)


def _copy_prewarmed_modules(site: Path) -> bool:
    """Give `site` the store's `node_modules` as hard links (a copy across file systems);
    False when there is no store for its lockfile or both ways failed."""
    seed = prewarm_dir(template_lock_hash(site)) / "node_modules"
    if not (seed / ".package-lock.json").is_file():
        return False
    target = site / "node_modules"
    for mode in ("--link", "--reflink=auto"):
        try:
            subprocess.run(
                [_tool("cp"), "-a", mode, str(seed), str(target)],
                check=True,
                capture_output=True,
                timeout=300,
            )
        except (OSError, subprocess.SubprocessError, ScaffoldError):
            # The preview installs what is missing on first start; a failed copy costs time.
            shutil.rmtree(target, ignore_errors=True)
            continue
        if mode == "--link":
            _unshare(target, PRIVATE_MODULE_FILES)
        return True
    return False


def _unshare(modules: Path, names: tuple[str, ...]) -> None:
    """Replace the hard links `names` (relative to `modules`) by private copies."""
    for name in names:
        path = modules / name
        if path.is_file():
            private = path.with_name(f".{path.name}.private")
            shutil.copy2(path, private)
            os.replace(private, path)


@dataclass(frozen=True)
class PrewarmResult:
    """`path`: the prewarmed folder; `action`: "installed" or "reused"; `seconds`."""

    path: Path
    action: str
    seconds: float


def prewarm(*, force: bool = False) -> PrewarmResult:
    """Install the template's dependencies once, in the preview image, with the shared npm
    cache: afterwards new projects get a copied `node_modules` and no network install.

    Idempotent (reused when done for the current lockfile unless `force`). Needs the
    preview image and, the first time, the npm registry (with DOCE_EXTRA_CA_BUNDLE when
    TLS is intercepted). Raises `StackError` (`IMAGE_MISSING`, `ENGINE_UNREACHABLE`,
    `OTHER` with npm's output as detail).
    """
    started = time.monotonic()
    target = prewarm_dir(template_lock_hash())
    if not force and (target / "node_modules" / ".package-lock.json").is_file():
        return PrewarmResult(target, "reused", time.monotonic() - started)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".prewarm-", dir=target.parent))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(TEMPLATE_DIR / name, work / name)
        _npm_ci_in_container(work)
        shutil.rmtree(target, ignore_errors=True)
        os.rename(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return PrewarmResult(target, "installed", time.monotonic() - started)


def _npm_ci_in_container(work: Path) -> None:
    volumes = {
        str(work): {"bind": "/app", "mode": "rw"},
        str(npm_cache_dir()): {"bind": "/var/cache/doce-npm", "mode": "rw"},
    }
    environment = {"npm_config_cache": "/var/cache/doce-npm", "HOME": "/home/doce"}
    if settings.DOCE_EXTRA_CA_BUNDLE:
        volumes[settings.DOCE_EXTRA_CA_BUNDLE] = {"bind": CA_MOUNT, "mode": "ro"}
        environment["NODE_EXTRA_CA_CERTS"] = CA_MOUNT
    if settings.DOCE_NPM_REGISTRY:
        environment["npm_config_registry"] = settings.DOCE_NPM_REGISTRY
    run_oneoff(
        settings.DOCE_PREVIEW_IMAGE,
        ["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund"],
        volumes=volumes,
        environment=environment,
        working_dir="/app",
        timeout=PREWARM_TIMEOUT_S,
    )
