"""Shared real-component fixtures: the scripted model and the pinned OpenCode server.

One scripted model and one OpenCode server serve the whole test session (process-wide
singletons, stopped at exit), whichever module asks first. Import the fixtures into a test
module (`from tests.opencode.fixtures import opencode_server, scripted_model`) or use them
under `tests/opencode/` where the conftest already does.

Under `DOCE_REQUIRE_DOCKER=1` (CI) a missing OpenCode binary fails the test instead of
skipping it.
"""

from __future__ import annotations

import atexit
import tempfile
import threading
from pathlib import Path

import pytest
from django.conf import settings

from tests.opencode.harness import OpencodeServer, OpencodeUnavailable, opencode_binary
from tests.scripted_model import ScriptedModelServer

_lock = threading.Lock()
_model: ScriptedModelServer | None = None
_server: OpencodeServer | None = None
_failure: str | None = None


def shared_scripted_model() -> ScriptedModelServer:
    """The session's scripted model on 127.0.0.1 (started on first use)."""
    global _model
    with _lock:
        if _model is None:
            _model = ScriptedModelServer().start()
            atexit.register(_model.stop)
        return _model


def start_opencode(model: ScriptedModelServer, root: Path | None = None) -> OpencodeServer:
    """Start a new OpenCode server of its own (the caller stops it)."""
    root = root or Path(tempfile.mkdtemp(prefix="doce-opencode-"))
    return OpencodeServer(opencode_binary(), model.base_url, root).start()


def shared_opencode_server() -> OpencodeServer:
    """The session's OpenCode server (started on first use, killed at exit)."""
    global _server, _failure
    model = shared_scripted_model()
    with _lock:
        if _failure is not None:
            raise OpencodeUnavailable(_failure)
        if _server is None:
            try:
                _server = start_opencode(model)
            except OpencodeUnavailable as exc:
                _failure = str(exc)
                raise
            atexit.register(_server.kill)
        return _server


def require_opencode() -> OpencodeServer:
    try:
        return shared_opencode_server()
    except OpencodeUnavailable as exc:
        if settings.DOCE_REQUIRE_DOCKER:
            pytest.fail(f"OpenCode is required (DOCE_REQUIRE_DOCKER=1): {exc}", pytrace=False)
        pytest.skip(f"OpenCode unavailable: {exc}")


@pytest.fixture(scope="session")
def scripted_model() -> ScriptedModelServer:
    """A scripted, OpenAI-compatible model server shared by the session."""
    return shared_scripted_model()


@pytest.fixture(scope="session")
def opencode_server(scripted_model) -> OpencodeServer:
    """The pinned OpenCode server (`doce.versions.OPENCODE_VERSION`) driven by the scripted
    model, shared by the session: `.base_url`, `.password`, `.project_dir`."""
    return require_opencode()
