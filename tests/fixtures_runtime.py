"""Shared fixtures for tests that run real project stacks on the Docker Engine.

Load them in a test module with `pytest_plugins = ["tests.fixtures_runtime"]` (or once,
for the whole suite, in the root `tests/conftest.py`). Mark such tests `@pytest.mark.docker`.

- `runtime_images` (session): the preview and agent images exist (built offline when
  missing, so a fresh machine needs no separate step) and the template is prewarmed. For the
  whole session it also gives the run its own `DOCE_INSTANCE` label, so reconciliation in
  tests only sees stacks of this run, and it removes any stack of the run left at the end.
- `make_runtime_project(owner=None, *, with_dependencies=True, **fields)` (function): a
  factory for `Project` rows that are scaffolded, have ports and a rendered stack; every
  stack it made is taken down (with volumes) and its files removed after the test.
- `runtime_project`: one such project, owned by bob.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings
from django.test.utils import override_settings

SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@pytest.fixture(scope="session")
def runtime_images():
    """Build (offline) the images if missing and prewarm the template; see module docs."""
    from doce.docker.images import build_images, images_present
    from projects.scaffold import prewarm

    overrides = {"DOCE_INSTANCE": f"test-{secrets.token_hex(4)}"}
    # Containers reach the npm registry through this host's trust store (TLS interception
    # on CI); the operator setting wins when present.
    if not settings.DOCE_EXTRA_CA_BUNDLE and SYSTEM_CA_BUNDLE.is_file():
        overrides["DOCE_EXTRA_CA_BUNDLE"] = str(SYSTEM_CA_BUNDLE)
    with override_settings(**overrides):
        if not images_present():
            build_images(offline=True, say=lambda line: None)
        prewarm()
        try:
            yield
        finally:
            _remove_run_stacks()


def _remove_run_stacks() -> None:
    from doce.docker.stacks import list_stacks, remove_stack

    for project_id in list_stacks():
        remove_stack(project_id)


@pytest.fixture
def make_runtime_project(runtime_images, db, django_user_model):
    """Factory: `make_runtime_project(owner=None, *, with_dependencies=True, **fields)` → a
    ready-to-start Project (`with_dependencies=False` leaves out the prewarmed node_modules,
    for tests that never wait for the preview)."""
    from projects.models import Project
    from projects.ports import ensure_ports
    from projects.runtime import delete_files, render_stack, stack_down
    from projects.scaffold import scaffold_site

    made: list[Project] = []

    def make(owner=None, *, with_dependencies: bool = True, **fields) -> Project:
        if owner is None:
            owner, _ = django_user_model.objects.get_or_create(
                username="runtime-owner", defaults={"email": "runtime@example.org"}
            )
        fields.setdefault("name", "Runtime test site")
        fields.setdefault("prompt", "A site for a runtime test")
        project = Project.objects.create(owner=owner, **fields)
        made.append(project)
        if with_dependencies:
            scaffold_site(project)
        else:  # for tests that never wait for the preview: skips copying node_modules
            with mock.patch("projects.scaffold._copy_prewarmed_modules"):
                scaffold_site(project)
        ensure_ports(project)
        render_stack(project)
        return project

    yield make
    for project in made:
        try:
            stack_down(project, delete=True)
        finally:
            delete_files(project)


@pytest.fixture
def runtime_project(make_runtime_project, bob):
    """A scaffolded project of bob's with ports and a rendered (not started) stack."""
    return make_runtime_project(owner=bob)
