"""Readiness (2xx/3xx only) and convergence after crashes, without Docker: a deploy whose
job vanished, a `current` symlink left behind by a crash right after the switch, a stop that
wins over a step that read an older status."""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from productions import services
from productions.jobs import answers, current_target, point_current
from productions.lifecycle import INTERRUPTED, reconcile
from productions.models import Production, Release, releases_dir
from projects.models import Project


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(self.server.answer)  # type: ignore[attr-defined]
        if 300 <= self.server.answer < 400:  # type: ignore[attr-defined]
            self.send_header("Location", "/elsewhere")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    "code, ready",
    [(200, True), (204, True), (301, True), (302, True), (404, False), (500, False), (503, False)],
)
def test_only_2xx_and_3xx_count_as_ready(server, code, ready):
    server.answer = code
    assert answers(server.server_address[1]) is ready


def test_a_closed_port_is_not_ready(server):
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    assert answers(port) is False


@pytest.fixture
def project(alice, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    # No Engine: reconciliation's container pass reports that and stops there.
    settings.DOCE_DOCKER_HOST = f"unix://{tmp_path}/no-docker.sock"
    return Project.objects.create(owner=alice, name="Bakery", prompt="a bakery")


def _live_release(project, digit: str) -> Release:
    release = Release.objects.create(
        project=project, release_id=digit * 64, kind="static", commit="c"
    )
    release.directory.mkdir(parents=True)
    (release.directory / "index.html").write_text(digit)
    return release


@pytest.mark.django_db
def test_a_deploy_whose_job_vanished_fails_and_the_live_release_stays(project):
    release = _live_release(project, "a")
    production = services.production_of(project)
    services.set_production_status(production, Production.Status.QUEUED)
    services.set_production_status(production, Production.Status.LIVE, live_release=release)
    # a deploy was under way when its worker died, and the queue gave up on the job
    services.set_production_status(production, Production.Status.QUEUED)
    services.set_production_status(production, Production.Status.BUILDING)
    report = reconcile()
    assert report.interrupted == [project.id]
    assert report.engine_error
    production.refresh_from_db()
    assert production.status == Production.Status.FAILED
    assert production.last_error == INTERRUPTED
    assert production.live_release == release


@pytest.mark.django_db
def test_a_deploy_with_a_queued_job_is_left_alone(project):
    services.deploy(project, project.owner)
    assert reconcile().interrupted == []
    assert Production.objects.get(pk=project.pk).status == Production.Status.QUEUED


@pytest.mark.django_db
def test_a_crash_right_after_the_switch_leaves_current_pointing_at_the_live_release(project):
    old = _live_release(project, "a")
    new = _live_release(project, "b")
    point_current(project, old)
    production = services.production_of(project)
    services.set_production_status(production, Production.Status.QUEUED)
    # the switch was recorded, the worker died before the symlink moved
    services.set_production_status(production, Production.Status.LIVE, live_release=new)
    assert current_target(project) == old.release_id
    assert reconcile().current_fixed == [project.id]
    assert current_target(project) == new.release_id
    assert os.readlink(releases_dir(project) / "current") == new.release_id  # relative
    assert reconcile().current_fixed == []
