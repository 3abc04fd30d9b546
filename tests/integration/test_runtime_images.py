"""The preview and agent images built by `manage.py build_images --offline`."""

from __future__ import annotations

import io
import time

import pytest
from django.conf import settings
from django.core.management import call_command

from doce import versions
from doce.docker.engine import engine_client

pytest_plugins = ["tests.fixtures_runtime"]
pytestmark = pytest.mark.docker


def test_it_reuses_images_that_are_up_to_date(runtime_images):
    out = io.StringIO()
    started = time.monotonic()
    call_command("build_images", "--offline", stdout=out)
    assert time.monotonic() - started < 15
    text = out.getvalue()
    for name in (
        settings.DOCE_OFFLINE_BASE_IMAGE,
        settings.DOCE_PREVIEW_IMAGE,
        settings.DOCE_AGENT_IMAGE,
    ):
        assert f"{name}: reused" in text


def test_the_images_carry_the_pinned_versions(runtime_images):
    client = engine_client()
    try:
        output = client.containers.run(
            settings.DOCE_AGENT_IMAGE,
            ["sh", "-c", "node --version; npm --version; opencode --version; git --version"],
            remove=True,
            labels={"dev.doce.test": "images"},
        ).decode()
    finally:
        client.close()
    lines = output.split()
    assert f"v{versions.NODE_VERSION}" in lines
    assert versions.NPM_VERSION in lines
    assert versions.OPENCODE_VERSION in lines
    assert "git" in lines
