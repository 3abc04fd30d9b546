import pytest
from django.db.utils import OperationalError

from doce import health
from doce.docker.engine import ENGINE_UNREACHABLE, EngineStatus


@pytest.fixture
def engine_up(monkeypatch):
    monkeypatch.setattr(health, "engine_status", lambda: EngineStatus(True, "20.10.24"))


@pytest.fixture
def engine_down(monkeypatch):
    monkeypatch.setattr(
        health, "engine_status", lambda: EngineStatus(False, error=ENGINE_UNREACHABLE)
    )


@pytest.mark.django_db
def test_it_is_healthy_when_every_check_passes(client, engine_up, monkeypatch):
    monkeypatch.setitem(health._EXTRA_CHECKS, "worker", lambda: (True, {"ok": True}))
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == {"ok": True, "vendor": "sqlite"}
    assert body["checks"]["docker"] == {"ok": True, "version": "20.10.24"}


@pytest.mark.django_db
def test_it_is_unhealthy_without_docker(client, engine_down):
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["docker"]["ok"] is False
    assert "Docker Engine unreachable" in body["checks"]["docker"]["error"]


@pytest.mark.django_db
def test_it_is_unhealthy_when_the_database_fails(client, engine_up, monkeypatch):
    def broken_cursor(*args, **kwargs):
        raise OperationalError("disk I/O error at /secret/path")

    monkeypatch.setattr(health.connection, "cursor", broken_cursor)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == {"ok": False, "error": "database unreachable"}
    assert b"/secret/path" not in response.content


@pytest.mark.django_db
def test_it_includes_registered_checks(client, engine_up, monkeypatch):
    monkeypatch.setitem(health._EXTRA_CHECKS, "worker", lambda: (False, {"ok": False}))
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["worker"] == {"ok": False}


@pytest.mark.docker
@pytest.mark.django_db
def test_it_reports_the_real_docker_engine(client):
    response = client.get("/healthz")
    docker_check = response.json()["checks"]["docker"]
    assert docker_check["ok"] is True
    assert docker_check["version"]
