"""Content-Security-Policy: every response carries it, and no page doce renders needs an
exception to it (no inline script, event handler or style attribute). The browser side of
the same promise is in tests/e2e (no CSP violation in Chromium's console)."""

from __future__ import annotations

import re

import pytest

from accounts.services import create_api_token
from projects import services

pytestmark = pytest.mark.django_db

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>\s*\S", re.IGNORECASE)
# `type="application/json"` blocks are data, not scripts: CSP does not apply to them.
DATA_BLOCK = re.compile(r'<script[^>]*type="application/json"[^>]*>.*?</script>', re.S)
EVENT_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
STYLE_ATTRIBUTE = re.compile(r"<[^>]+\sstyle\s*=", re.IGNORECASE)
INLINE_STYLESHEET = re.compile(r"<style[\s>]", re.IGNORECASE)


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {
        name: values
        for name, *values in (part.split() for part in header.split(";") if part.strip())
    }


def test_it_sends_the_policy_on_every_kind_of_response(client, alice):
    for path in ("/login", "/healthz", "/api/projects", "/static/css/doce.css", "/nowhere"):
        response = client.get(path)
        rules = policy(response)
        assert rules["default-src"] == ["'self'"], path
        assert rules["script-src"] == ["'self'"] and rules["style-src"] == ["'self'"], path
        assert rules["img-src"] == ["'self'", "data:"], path
        assert rules["object-src"] == ["'none'"] and rules["base-uri"] == ["'none'"], path


def test_it_lets_only_the_workspace_frame_its_own_preview_origin(
    alice_client, alice_project, settings
):
    workspace = alice_client.get(f"/projects/{alice_project.id}/")
    origin = f"http://p-{alice_project.id}.localhost:{settings.DOCE_PORT}"
    assert policy(workspace)["frame-src"] == ["'self'", origin]
    assert policy(alice_client.get("/"))["frame-src"] == ["'self'"]
    settings.DOCE_PREVIEW_DOMAIN = "previews.example.org"
    workspace = alice_client.get(f"/projects/{alice_project.id}/")
    origin = f"http://p-{alice_project.id}.previews.example.org:{settings.DOCE_PORT}"
    assert policy(workspace)["frame-src"] == ["'self'", origin]


def test_it_renders_no_page_that_needs_inline_script_or_style(
    alice_client, alice, alice_project, alice_provider
):
    job = services.enqueue_step(alice_project, "project.create")
    create_api_token(alice, "laptop")
    pid = alice_project.id
    paths = [
        "/",
        "/settings/",
        "/users/",
        "/queue/",
        f"/queue/jobs/{job.pk}/",
        f"/projects/{pid}/",
        f"/projects/{pid}/files/?path=src/pages/index.astro",
        f"/projects/{pid}/assets/",
        f"/projects/{pid}/deploy/?embed=1",
        "/api/docs",
        "/admin/",
        "/admin/queue/job/",
        f"/admin/queue/job/{job.pk}/change/",
        "/admin/accounts/providercredential/",
        "/admin/auth/user/add/",
    ]
    for path in paths:
        response = alice_client.get(path)
        assert response.status_code == 200, path
        page = DATA_BLOCK.sub("", response.content.decode())
        for name, pattern in [
            ("inline script", INLINE_SCRIPT),
            ("event handler attribute", EVENT_HANDLER),
            ("style attribute", STYLE_ATTRIBUTE),
            ("inline stylesheet", INLINE_STYLESHEET),
        ]:
            found = pattern.search(page)
            assert found is None, f"{path}: {name} {page[found.start() : found.start() + 80]!r}"
