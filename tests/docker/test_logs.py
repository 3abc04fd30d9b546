"""The project's docker.log: marked lines, reading by offset, rotation."""

from __future__ import annotations

import re

import pytest

from doce.docker.logs import DockerLog, clean_line, read_log


@pytest.fixture
def logs_dir(tmp_path):
    return tmp_path / "logs"


def _fill(logs_dir, count: int, width: int = 50) -> list[str]:
    lines = [f"line {i:05d} " + "x" * width for i in range(count)]
    DockerLog.in_dir(logs_dir).docker(lines)
    return [f"[docker] {line}" for line in lines]


def test_it_writes_the_three_markers(logs_dir):
    log = DockerLog.in_dir(logs_dir)
    log.host("docker-compose up --detach")
    log.docker(["Creating doce_x_preview_1 ... done", "", "   "])
    log.app("preview", ["\x1b[32m astro \x1b[39m ready\r"])
    log.host("exit=0")

    lines = (logs_dir / "docker.log").read_text().splitlines()
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(rf"\[host {stamp}\] docker-compose up --detach", lines[0])
    assert lines[1] == "[docker] Creating doce_x_preview_1 ... done"
    assert lines[2] == "[app] preview:  astro  ready"
    assert lines[3].endswith("] exit=0")
    assert len(lines) == 4


def test_it_reads_a_missing_log_as_empty(logs_dir):
    assert tuple(read_log(logs_dir)) == ("", 0, False)


def test_it_reads_a_small_log_whole(logs_dir):
    lines = _fill(logs_dir, 3)
    text, offset, truncated = read_log(logs_dir)
    assert text.splitlines() == lines
    assert offset == (logs_dir / "docker.log").stat().st_size
    assert not truncated


def test_it_reads_the_tail_without_a_partial_first_line(logs_dir):
    lines = _fill(logs_dir, 2000)
    text, offset, truncated = read_log(logs_dir, max_bytes=4096)
    assert truncated
    assert len(text.encode()) <= 4096
    got = text.splitlines()
    assert got == lines[-len(got) :]
    assert offset == (logs_dir / "docker.log").stat().st_size


def test_it_resumes_exactly_from_an_offset(logs_dir):
    _fill(logs_dir, 10)
    _, offset, _ = read_log(logs_dir)
    log = DockerLog.in_dir(logs_dir)
    log.docker(["after one", "after two"])

    text, next_offset, truncated = read_log(logs_dir, offset)
    assert text == "[docker] after one\n[docker] after two\n"
    assert not truncated
    assert read_log(logs_dir, next_offset).text == ""


def test_it_pages_through_a_big_log_in_whole_lines(logs_dir):
    lines = _fill(logs_dir, 3000)
    offset, pages, seen = 0, 0, []
    while True:
        text, offset, more = read_log(logs_dir, offset, max_bytes=10_000)
        assert len(text.encode()) <= 10_000
        assert text == "" or text.endswith("\n")
        seen += text.splitlines()
        pages += 1
        if not more:
            break
    assert seen == lines
    assert pages > 10


def test_it_starts_over_after_a_rotation(logs_dir):
    log = DockerLog(logs_dir / "docker.log", max_bytes=4096)
    log.path.parent.mkdir(parents=True)
    for i in range(100):
        log.docker([f"old line {i} " + "y" * 60])
    assert (logs_dir / "docker.log.1").is_file()
    assert (logs_dir / "docker.log").stat().st_size <= 4096 + 100

    # Rotate again so the old offset now lies past the end of the new file.
    for i in range(100):
        log.docker([f"new line {i} " + "z" * 60])
    text, _, truncated = read_log(logs_dir, offset=10**9)
    assert truncated
    assert text.startswith("[docker] ")


def test_it_refuses_nonsense_arguments(logs_dir):
    with pytest.raises(ValueError):
        read_log(logs_dir, offset=-1)
    with pytest.raises(ValueError):
        read_log(logs_dir, max_bytes=0)


def test_it_cuts_huge_lines_and_strips_terminal_codes():
    assert clean_line("\x1b[1m\x1b[31mred\x1b[0m\r\n") == "red"
    assert len(clean_line("a" * 100_000)) < 9000
