"""Snapshots of the site's git repository run no program the agent could plant (hooks,
filters, fsmonitor): the repository is writable from the agent's container."""

from __future__ import annotations

import subprocess

import pytest

from productions.build import BuildError, diff_stat, export_commit, snapshot_commit


def git(site, *args):
    subprocess.run(["git", *args], cwd=site, check=True, capture_output=True)


@pytest.fixture
def site(tmp_path):
    site = tmp_path / "site"
    (site / "src").mkdir(parents=True)
    (site / "src" / "index.astro").write_text("<h1>One</h1>\n")
    (site / ".gitignore").write_text("node_modules/\n.env\n")
    git(site, "init", "-q", "--initial-branch=main")
    git(site, "-c", "user.name=t", "-c", "user.email=t@x", "add", "--all")
    git(site, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "start")
    return site


def test_it_commits_changes_and_exports_the_commit_without_ignored_files(site, tmp_path):
    first = snapshot_commit(site)
    assert snapshot_commit(site) == first  # nothing changed: no new commit
    (site / "src" / "index.astro").write_text("<h1>Two</h1>\n")
    (site / "public").mkdir()
    (site / "public" / "logo.svg").write_text("<svg/>")
    (site / ".env").write_text("SECRET=1")
    second = snapshot_commit(site)
    assert second != first
    out = tmp_path / "out"
    out.mkdir()
    export_commit(site, second, out)
    assert (out / "public" / "logo.svg").is_file()
    assert (out / "src" / "index.astro").read_text() == "<h1>Two</h1>\n"
    assert not (out / ".env").exists() and not (out / ".git").exists()
    assert "2 files changed" in diff_stat(site, first, second)


def test_hooks_do_not_run(site, tmp_path):
    marker = tmp_path / "ran"
    for hook in ("pre-commit", "post-commit", "commit-msg", "post-index-change"):
        path = site / ".git" / "hooks" / hook
        path.write_text(f"#!/bin/sh\ntouch {marker}\n")
        path.chmod(0o755)
    (site / "src" / "index.astro").write_text("<h1>Changed</h1>\n")
    snapshot_commit(site)
    assert not marker.exists()


@pytest.mark.parametrize(
    "key, value",
    [
        ("core.fsmonitor", "touch {marker}"),
        ("filter.evil.clean", "touch {marker}"),
        ("include.path", "{marker}.cfg"),
        ("core.worktree", "/"),
        ("diff.evil.textconv", "touch {marker}"),
    ],
)
def test_a_planted_config_key_is_refused_before_git_runs_anything(site, tmp_path, key, value):
    marker = tmp_path / "ran"
    git(site, "config", "--local", key, value.format(marker=marker))
    (site / ".gitattributes").write_text("* filter=evil diff=evil\n")
    with pytest.raises(BuildError, match="git settings contain"):
        snapshot_commit(site)
    assert not marker.exists()


def test_a_git_folder_that_is_a_link_elsewhere_is_refused(site, tmp_path):
    other = tmp_path / "other-git"
    (site / ".git").rename(other)
    (site / ".git").symlink_to(other)
    with pytest.raises(BuildError, match="no git repository of its own"):
        snapshot_commit(site)
