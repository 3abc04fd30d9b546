"""doce.tarfiles: the `data` extraction filter, whichever module provides it."""

import io

import pytest

from doce.tarfiles import tarfile


def _archive(*members: tuple[str, str]) -> bytes:
    """A tar with each (name, symlink target or "" for a small file)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, target in members:
            info = tarfile.TarInfo(name)
            if target:
                info.type, info.linkname = tarfile.SYMTYPE, target
                tar.addfile(info)
            else:
                info.size = 2
                tar.addfile(info, io.BytesIO(b"ok"))
    return buffer.getvalue()


def test_it_extracts_a_plain_archive(tmp_path):
    with tarfile.open(fileobj=io.BytesIO(_archive(("src/a.txt", ""), ("b", "src/a.txt")))) as tar:
        tar.extractall(tmp_path, filter="data")
    assert (tmp_path / "src" / "a.txt").read_text() == "ok"
    assert (tmp_path / "b").read_text() == "ok"


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside"])
def test_it_refuses_a_link_out_of_the_folder(tmp_path, target):
    dest = tmp_path / "dest"
    dest.mkdir()
    archive = io.BytesIO(_archive(("leak", target)))
    with tarfile.open(fileobj=archive) as tar, pytest.raises(tarfile.FilterError):
        tar.extractall(dest, filter="data")
    assert list(dest.iterdir()) == []
