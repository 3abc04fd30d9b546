"""Run the pinned, real OpenCode server on the host for tests, recordings and benchmarks.

- `opencode_binary(version)` fetches `opencode-linux-x64@<version>` with `npm pack` into
  `~/.cache/doce/opencode/<version>/` once (file-locked, atomic), and returns `bin/opencode`.
  `DOCE_OPENCODE_CACHE` overrides the cache root.
- `OpencodeServer(binary, model_base_url)` runs `opencode serve --hostname 127.0.0.1
  --port <free port>` with `OPENCODE_SERVER_PASSWORD`, a private HOME/XDG tree and a
  git-initialised project directory whose `opencode.json` points at the scripted model.
  OpenCode 1.18.33 bundles `@ai-sdk/openai-compatible`, so nothing is installed at run time;
  the models catalogue fetch and auto-update are turned off so it runs offline.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import httpx

from doce.versions import OPENCODE_VERSION
from tests.scripted_model import opencode_provider_config

PASSWORD = "opencode-test-password-7f3a"
USERNAME = "opencode"


class OpencodeUnavailable(RuntimeError):
    """The pinned binary could not be fetched or the server did not become ready."""


def cache_root() -> Path:
    override = os.environ.get("DOCE_OPENCODE_CACHE")
    return Path(override) if override else Path.home() / ".cache" / "doce" / "opencode"


def opencode_binary(version: str = OPENCODE_VERSION) -> Path:
    """Return the path of `bin/opencode` for `version`, fetching it once with npm.

    Raises `OpencodeUnavailable` when npm is missing or the package cannot be fetched.
    """
    target_dir = cache_root() / version
    binary = target_dir / "bin" / "opencode"
    if binary.is_file():
        return binary
    target_dir.mkdir(parents=True, exist_ok=True)
    with open(target_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be fetching the same version
        if binary.is_file():
            return binary
        npm = shutil.which("npm")
        if npm is None:
            raise OpencodeUnavailable("npm is not installed; it fetches the OpenCode binary")
        with tempfile.TemporaryDirectory(dir=target_dir) as work:
            result = subprocess.run(
                [npm, "pack", f"opencode-linux-x64@{version}", "--pack-destination", work],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            tarballs = list(Path(work).glob("*.tgz"))
            if result.returncode != 0 or not tarballs:
                raise OpencodeUnavailable(
                    f"npm pack opencode-linux-x64@{version} failed: {result.stderr[-500:]}"
                )
            with tarfile.open(tarballs[0]) as tar:
                member = tar.getmember("package/bin/opencode")
                source = tar.extractfile(member)
                assert source is not None
                partial = Path(work) / "opencode"
                with open(partial, "wb") as out:
                    shutil.copyfileobj(source, out)
            partial.chmod(0o755)
            binary.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, binary)
    return binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OpencodeServer:
    """One real `opencode serve` process with its own HOME and project directory.

    `start()` waits (up to `ready_timeout` seconds) for `GET /doc` to answer 200 with basic
    auth. `kill()` SIGKILLs it (a crashed agent); `start()` again restarts it on the same
    port with the same data, as a restarted container would.
    """

    def __init__(self, binary: Path, model_base_url: str, root: Path, port: int | None = None):
        self.binary = binary
        self.root = root
        self.home = root / "home"
        self.project_dir = root / "project"
        self.port = port or free_port()
        self.password = PASSWORD
        self.model_base_url = model_base_url
        self.process: subprocess.Popen | None = None
        self.log_path = root / "opencode.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def prepare(self) -> None:
        for sub in (".config", ".cache", ".local/share", ".local/state"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        self.project_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "$schema": "https://opencode.ai/config.json",
            **opencode_provider_config(self.model_base_url),
            "autoupdate": False,
            "share": "disabled",
            "permission": {"edit": "allow", "bash": "allow", "webfetch": "deny"},
        }
        (self.project_dir / "opencode.json").write_text(json.dumps(config, indent=2))
        if not (self.project_dir / ".git").exists():
            git_path = shutil.which("git") or "git"
            git = [git_path, "-c", "user.name=doce", "-c", "user.email=doce@localhost"]
            subprocess.run([*git, "init", "-q", "-b", "main"], cwd=self.project_dir, check=True)
            subprocess.run([*git, "add", "-A"], cwd=self.project_dir, check=True)
            subprocess.run(
                [*git, "commit", "-q", "-m", "initial template"], cwd=self.project_dir, check=True
            )

    def environment(self) -> dict[str, str]:
        home = str(self.home)
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": home,
            "XDG_CONFIG_HOME": f"{home}/.config",
            "XDG_CACHE_HOME": f"{home}/.cache",
            "XDG_DATA_HOME": f"{home}/.local/share",
            "XDG_STATE_HOME": f"{home}/.local/state",
            "OPENCODE_SERVER_PASSWORD": self.password,
            "OPENCODE_DISABLE_MODELS_FETCH": "1",
            "OPENCODE_DISABLE_AUTOUPDATE": "1",
            "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
            "OPENCODE_DISABLE_SHARE": "1",
            "OPENCODE_ENABLE_QUESTION_TOOL": "1",
        }

    def start(self, ready_timeout: float = 60.0) -> OpencodeServer:
        self.prepare()
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.process = subprocess.Popen(
            [
                str(self.binary),
                "serve",
                "--hostname",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--print-logs",
            ],
            cwd=self.project_dir,
            env=self.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.wait_ready(ready_timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        auth = (USERNAME, self.password)
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise OpencodeUnavailable(
                    f"opencode exited with {self.process.returncode}: {self.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/doc", auth=auth, timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise OpencodeUnavailable(f"opencode not ready after {timeout} s: {self.log_tail()}")

    def log_tail(self, size: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL the server (and its children) and wait for it."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
