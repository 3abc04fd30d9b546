"""Building a release: snapshot the site in git, export the commit, run `astro build` in a
one-off builder container, and move the output into place under its content hash.

Never on the host, never in the running preview: the builder is a fresh container from the
preview image with CPU and memory limits and a timeout (`DOCE_BUILD_*`), working on an export
of one git commit (so files the agent writes meanwhile are not half in the build). Files in
`public/` are part of the commit and so of the build.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from pathlib import Path

from django.conf import settings

from doce.docker.logs import DockerLog, clean_line
from doce.docker.oneoff import run_oneoff
from doce.docker.stacks import LABEL_INSTANCE, instance_id
from doce.tarfiles import tarfile
from productions.models import Release
from productions.releases import content_hash, tree_size
from projects.models import Project
from projects.scaffold import CA_MOUNT, GIT_IDENTITY, npm_cache_dir, prewarm_dir, template_lock_hash

# Containers of a project's production (builder and release containers) carry this label
# (not `dev.doce.project`, so they are never taken for part of the project's stack).
LABEL_PRODUCTION = "dev.doce.production"
LABEL_RELEASE = "dev.doce.release"
GIT_TIMEOUT_S = 60
BUILD_LOG_MAX_CHARS = 200_000
SNAPSHOT_MESSAGE = "Deploy snapshot"


class BuildError(Exception):
    """The build failed in a way retrying cannot fix (the site's own error); `str()` is a
    message for the user, `log_tail` the last lines of the build's output."""

    permanent = True

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


def builds_dir(project: Project) -> Path:
    """`<project root>/builds`: scratch folders of builds in progress (same file system as
    the releases, so finished output moves into place by rename)."""
    return project.root_dir / "builds"


def builder_name(project_id: str) -> str:
    return f"doce_{project_id}_build"


# The site's repository is writable by its agent, so git runs on it with no configuration
# but its own allow-listed keys: nothing in it may make git run a program on the host
# (hooks, fsmonitor, filters, diff drivers, signing, pagers, includes).
SAFE_GIT_OPTIONS = [
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "commit.gpgSign=false",
    "-c", "tag.gpgSign=false",
    "-c", "core.pager=cat",
    "-c", "diff.external=",
    "-c", "core.editor=true",
]  # fmt: skip
_ALLOWED_CONFIG = re.compile(
    r"core\.(repositoryformatversion|filemode|bare|logallrefupdates|ignorecase"
    r"|precomposeunicode|symlinks)"
    r"|user\.(name|email)|init\.defaultbranch|extensions\.objectformat"
    r"|branch\.[^.]+\.(remote|merge)|remote\.[^.]+\.(url|fetch)"
)


def _git_env(site: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(site / ".git" / "no-home"),
        "GIT_DIR": str(site / ".git"),
        "GIT_WORK_TREE": str(site),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
    }


def _run_git(site: Path, args: list[str]) -> subprocess.CompletedProcess:
    git = shutil.which("git")
    if git is None:
        raise BuildError("git is not installed on this host.")
    try:
        return subprocess.run(
            [git, *SAFE_GIT_OPTIONS, *args],
            cwd=site,
            env=_git_env(site),
            check=True,
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
        )
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode("utf-8", "replace")[-300:]
        raise BuildError(f"git {args[0]} failed: {detail}") from None
    except (OSError, subprocess.SubprocessError) as exc:
        raise BuildError(f"git {args[0]} failed: {exc}") from None


def check_repository(site: Path) -> None:
    """Refuse a site repository git must not run in: `.git` not a plain folder of the site
    (a symlink, or a file pointing elsewhere), or a local configuration key outside the
    allow-list (`_ALLOWED_CONFIG`; includes are never followed). Raises `BuildError`."""
    dot_git = site / ".git"
    if dot_git.is_symlink() or not dot_git.is_dir():
        raise BuildError("The site has no git repository of its own; it cannot be deployed.")
    listed = _run_git(site, ["config", "--local", "--list", "--null", "--no-includes"]).stdout
    for entry in listed.split(b"\0"):
        key = entry.split(b"\n", 1)[0].decode("utf-8", "replace").strip().lower()
        if key and not _ALLOWED_CONFIG.fullmatch(key):
            raise BuildError(
                f"The site's git settings contain {key!r}, which doce does not run. Remove it "
                "from the site's .git/config and deploy again."
            )


def _git(site: Path, *args: str) -> subprocess.CompletedProcess:
    check_repository(site)
    return _run_git(site, list(args))


def snapshot_commit(site: Path) -> str:
    """Commit the site's current files (everything not ignored) when they differ from HEAD,
    and return HEAD's commit id: the snapshot this deploy builds."""
    changes = _git(site, "status", "--porcelain", "--untracked-files=all").stdout
    if changes.strip():
        _git(site, "add", "--all")
        _git(site, *GIT_IDENTITY, "commit", "--quiet", "--no-verify", "-m", SNAPSHOT_MESSAGE)
    return _git(site, "rev-parse", "HEAD").stdout.decode().strip()


def export_commit(site: Path, commit: str, dest: Path) -> None:
    """Write the files of `commit` (no `.git`) into the empty folder `dest`."""
    archive = _git(site, "archive", "--format=tar", commit).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")


def diff_stat(site: Path, old: str, new: str) -> str:
    """`git diff --shortstat old new` of the site ("" when either commit is unknown)."""
    if not old or not new or old == new:
        return ""
    try:
        out = _git(site, "diff", "--shortstat", old, new).stdout
    except BuildError:
        return ""
    return out.decode("utf-8", "replace").strip()


LINK = ["-a", "-l"]
COPY = ["-a", "--reflink=auto"]


def provide_dependencies(site: Path, work: Path) -> str:
    """Give the build folder a `node_modules`: hard links to the site's own (fast; the
    build runs the site's code, which may change its own packages anyway), else a copy of
    the prewarmed template's when the lockfile matches — never hard links to that shared
    cache, which a build could otherwise change for every later project. Returns how
    ("site", "prewarmed") or "" when the builder must install them (`npm ci`)."""
    sources: list[tuple[str, Path, tuple[list[str], ...]]] = [
        ("site", site / "node_modules", (LINK, COPY))
    ]
    if (work / "package-lock.json").is_file():
        lock = template_lock_hash(work)
        sources.append(("prewarmed", prewarm_dir(lock) / "node_modules", (COPY,)))
    cp = shutil.which("cp")
    for how, source, ways in sources:
        if not (source / ".package-lock.json").is_file() or cp is None:
            continue
        for flags in ways:
            target = work / "node_modules"
            shutil.rmtree(target, ignore_errors=True)
            try:
                subprocess.run(
                    [cp, *flags, str(source), str(target)],
                    check=True,
                    capture_output=True,
                    timeout=300,
                )
                return how
            except (OSError, subprocess.SubprocessError):
                continue
    shutil.rmtree(work / "node_modules", ignore_errors=True)
    return ""


class BuildLog:
    """Collects a build's output: appended to the project's Docker log as `[app] build:`
    lines (which the workspace's Logs stream shows live) and kept for the release."""

    def __init__(self, project: Project) -> None:
        self._log = DockerLog.in_dir(project.logs_dir)
        self.lines: list[str] = []
        self._size = 0

    def host(self, message: str) -> None:
        self._log.host(message)
        self._keep(f"$ {message}")

    def line(self, text: str) -> None:
        text = clean_line(text)
        if not text:
            return
        self._log.write([f"[app] build: {text}"])
        self._keep(text)

    def _keep(self, text: str) -> None:
        if self._size < BUILD_LOG_MAX_CHARS:
            self.lines.append(text)
            self._size += len(text) + 1

    def text(self) -> str:
        return "\n".join(self.lines)

    def tail(self, count: int = 15) -> str:
        return "\n".join(self.lines[-count:])


def run_builder(project: Project, work: Path, build_log: BuildLog, *, install: bool) -> None:
    """Run the site's build (`astro build`, after `npm ci` when `install`) in a one-off
    container from the preview image on `work` (mounted at `/build`). Raises `StackError`."""
    volumes = {str(work): {"bind": "/build", "mode": "rw"}}
    environment = {
        "HOME": "/tmp",  # noqa: S108 (inside the builder container)
        "ASTRO_TELEMETRY_DISABLED": "1",
        "CI": "1",
    }
    if settings.DOCE_EXTRA_CA_BUNDLE:
        volumes[settings.DOCE_EXTRA_CA_BUNDLE] = {"bind": CA_MOUNT, "mode": "ro"}
        environment["NODE_EXTRA_CA_CERTS"] = CA_MOUNT
    steps: list[list[str]] = []
    if install:
        volumes[str(npm_cache_dir())] = {"bind": "/var/cache/doce-npm", "mode": "rw"}
        environment["npm_config_cache"] = "/var/cache/doce-npm"
        if settings.DOCE_NPM_REGISTRY:
            environment["npm_config_registry"] = settings.DOCE_NPM_REGISTRY
        steps.append(["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund"])
    steps.append(["node", "node_modules/astro/bin/astro.mjs", "build"])
    for argv in steps:
        build_log.host(" ".join(argv))
        run_oneoff(
            settings.DOCE_PREVIEW_IMAGE,
            argv,
            volumes=volumes,
            environment=environment,
            working_dir="/build",
            timeout=settings.DOCE_BUILD_TIMEOUT_SECONDS,
            name=builder_name(project.id),
            labels={LABEL_PRODUCTION: project.id, LABEL_INSTANCE: instance_id()},
            cpus=settings.DOCE_BUILD_CPUS,
            memory_mb=settings.DOCE_BUILD_MEMORY_MB,
            on_output=build_log.line,
        )


def output_kind(work: Path) -> str:
    """`server` when the build produced `dist/server/entry.mjs` (Node adapter), else
    `static`. Raises `BuildError` when there is no `dist/` at all."""
    dist = work / "dist"
    if not dist.is_dir():
        raise BuildError("The build finished without writing dist/.")
    if (dist / "server" / "entry.mjs").is_file():
        return Release.Kind.SERVER
    return Release.Kind.STATIC


def stage_output(work: Path, kind: str) -> tuple[Path, str, int]:
    """Arrange the build output as a release folder inside `work` and hash it.

    Static: the folder is `dist/` itself (the edge serves it). Server: `dist/`,
    `package.json` and a copy of `node_modules` (what `node dist/server/entry.mjs` needs;
    copied, never hard-linked to the site's, so later changes to the site's packages cannot
    change a release); the hash covers `dist/` only. Returns (folder, content hash, size in
    bytes of the hashed output). Raises `BuildError` when the copy fails.
    """
    dist = work / "dist"
    digest = content_hash(dist)
    size = tree_size(dist)
    if kind == Release.Kind.STATIC:
        return dist, digest, size
    staged = work / ".release"
    staged.mkdir()
    os.rename(dist, staged / "dist")
    if (work / "package.json").exists():
        os.rename(work / "package.json", staged / "package.json")
    if (work / "node_modules").is_dir():
        cp = shutil.which("cp")
        try:
            subprocess.run(
                [cp or "cp", *COPY, str(work / "node_modules"), str(staged / "node_modules")],
                check=True,
                capture_output=True,
                timeout=600,
            )
        except (OSError, subprocess.SubprocessError):
            raise BuildError("Could not copy the release's node_modules.") from None
    return staged, digest, size
