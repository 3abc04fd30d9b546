"""The site template and scaffolding a project's files."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from projects import scaffold
from projects.models import Project

GIT = shutil.which("git") or "git"


@pytest.fixture
def project(db, bob, settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    settings.DOCE_CACHE_DIR = tmp_path / "cache"
    return Project.objects.create(owner=bob, name="Site", prompt="p")


def test_it_copies_the_template_and_commits_it(project):
    assert scaffold.scaffold_site(project) is True
    site = project.site_dir
    for name in (
        "package.json",
        "package-lock.json",
        "astro.config.mjs",
        "AGENTS.md",
        "opencode.json",
        "src/pages/index.astro",
    ):
        assert (site / name).is_file(), name
    log = subprocess.run(
        [GIT, "log", "--format=%an %s"], cwd=site, capture_output=True, text=True, check=True
    )
    assert log.stdout.strip() == "doce Start from the doce template"
    status = subprocess.run(
        [GIT, "status", "--porcelain"], cwd=site, capture_output=True, text=True, check=True
    )
    assert status.stdout == ""
    assert not (site / "node_modules").exists()  # nothing prewarmed in this cache


def test_it_is_idempotent(project):
    assert scaffold.scaffold_site(project) is True
    (project.site_dir / "src/pages/index.astro").write_text("edited")
    assert scaffold.scaffold_site(project) is False
    assert (project.site_dir / "src/pages/index.astro").read_text() == "edited"


def test_it_leaves_nothing_half_written(project, monkeypatch, tmp_path):
    monkeypatch.setattr(scaffold, "TEMPLATE_DIR", tmp_path / "no-such-template")
    with pytest.raises(FileNotFoundError):
        scaffold.scaffold_site(project)
    assert not project.site_dir.exists()
    assert [p.name for p in project.root_dir.iterdir()] == ["logs"]


def test_it_links_prewarmed_dependencies_from_the_store(project, monkeypatch):
    seed = scaffold.prewarm_dir(scaffold.template_lock_hash()) / "node_modules"
    (seed / "astro").mkdir(parents=True)
    (seed / ".package-lock.json").write_text("{}")
    (seed / "astro" / "package.json").write_text('{"name": "astro"}')

    scaffold.scaffold_site(project)

    linked = project.site_dir / "node_modules"
    assert (linked / "astro" / "package.json").read_text() == '{"name": "astro"}'
    # One inode in the store and every project (npm replaces files, never edits them) ...
    assert (linked / "astro" / "package.json").stat().st_ino == (
        seed / "astro" / "package.json"
    ).stat().st_ino
    # ... except the file npm rewrites in place, and the folders, which are the project's.
    assert (linked / ".package-lock.json").stat().st_ino != (
        seed / ".package-lock.json"
    ).stat().st_ino
    assert (linked / "astro").stat().st_ino != (seed / "astro").stat().st_ino

    # Across file systems (no hard links) the store is copied.
    real_run = scaffold.subprocess.run

    def no_links(argv, **kwargs):
        if "--link" in argv:
            raise scaffold.subprocess.CalledProcessError(1, argv)
        return real_run(argv, **kwargs)

    monkeypatch.setattr(scaffold.subprocess, "run", no_links)
    other = Project.objects.create(owner=project.owner, name="Other", prompt="p")
    scaffold.scaffold_site(other)
    copied = other.site_dir / "node_modules" / "astro" / "package.json"
    assert copied.read_text() == '{"name": "astro"}'
    assert copied.stat().st_ino != (seed / "astro" / "package.json").stat().st_ino


def test_the_template_is_a_small_astro_site():
    site = scaffold.TEMPLATE_DIR
    package = json.loads((site / "package.json").read_text())
    assert list(package["dependencies"]) == ["astro"]
    assert package["dependencies"]["astro"].startswith("7.")
    lock = json.loads((site / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/astro"]["version"] == package["dependencies"]["astro"]
    # Installs go to whatever registry the containers are configured with.
    assert '"resolved"' not in (site / "package-lock.json").read_text()
    config = json.loads((site / "opencode.json").read_text())
    assert set(config["permission"]) >= {"edit", "bash"}
    assert "provider" not in config and "model" not in config
    assert "allowedHosts: true" in (site / "astro.config.mjs").read_text()
    agents = (site / "AGENTS.md").read_text()
    assert "src/pages" in agents
    assert "package manager is **npm**" in agents  # the shared store's rules follow
