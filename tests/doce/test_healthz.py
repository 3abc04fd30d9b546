from datetime import timedelta

import pytest
from django.db.utils import OperationalError
from django.utils import timezone

from doce import engine_health, health
from doce.docker import engine
from doce.docker.engine import ENGINE_UNREACHABLE, EngineStatus
from doce.models import EngineHealth

TOKEN = "health-token-7c1e0a9b5d3f"


@pytest.fixture
def engine_up():
    engine_health.record(EngineStatus(True, "20.10.24"))


@pytest.fixture
def engine_down():
    engine_health.record(EngineStatus(False, error=ENGINE_UNREACHABLE))


@pytest.fixture
def no_engine_calls(monkeypatch):
    """Fail the test if the web process calls the Docker Engine."""

    def refuse(*args, **kwargs):
        raise AssertionError("the web process called the Docker Engine")

    monkeypatch.setattr(engine, "engine_client", refuse)
    monkeypatch.setattr(engine_health, "engine_status", refuse)


@pytest.fixture
def worker_alive(monkeypatch):
    monkeypatch.setitem(health._EXTRA_CHECKS, "worker", lambda: (True, {"ok": True}))


@pytest.mark.django_db
def test_it_is_healthy_when_every_check_passes(
    alice_client, engine_up, worker_alive, no_engine_calls
):
    response = alice_client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == {"ok": True, "vendor": "sqlite"}
    docker = body["checks"]["docker"]
    assert docker["ok"] is True and docker["state"] == "reachable"
    assert docker["version"] == "20.10.24"


@pytest.mark.django_db
def test_it_shows_anonymous_callers_the_status_only(client, engine_up, worker_alive):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_it_shows_a_member_who_is_not_staff_the_status_only(bob_client, engine_up, worker_alive):
    assert bob_client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.django_db
def test_it_shows_details_to_a_caller_with_the_configured_token(
    client, settings, engine_up, worker_alive
):
    settings.DOCE_HEALTHZ_TOKEN = TOKEN
    body = client.get("/healthz", headers={"X-Doce-Health-Token": TOKEN}).json()
    assert body["checks"]["docker"]["version"] == "20.10.24"
    wrong = client.get("/healthz", headers={"X-Doce-Health-Token": TOKEN + "x"}).json()
    assert wrong == {"status": "ok"}


@pytest.mark.django_db
def test_an_empty_token_setting_lets_no_anonymous_caller_see_details(client, engine_up):
    body = client.get("/healthz", headers={"X-Doce-Health-Token": ""}).json()
    assert "checks" not in body


@pytest.mark.django_db
def test_it_is_unhealthy_when_the_worker_recorded_docker_down(
    alice_client, engine_down, worker_alive, no_engine_calls
):
    response = alice_client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["docker"]["ok"] is False
    assert body["checks"]["docker"]["state"] == "unreachable"
    assert "Docker Engine unreachable" in body["checks"]["docker"]["error"]


@pytest.mark.django_db
def test_an_old_record_says_nothing_about_docker(alice_client, settings, worker_alive):
    engine_health.record(EngineStatus(True, "20.10.24"), now=timezone.now() - timedelta(minutes=5))
    docker = alice_client.get("/healthz").json()["checks"]["docker"]
    assert docker["state"] == "unknown"
    assert docker["ok"] is False
    assert "No worker has checked" in docker["error"]


@pytest.mark.django_db
def test_it_is_unhealthy_when_the_database_fails(client, settings, engine_up, monkeypatch):
    settings.DOCE_HEALTHZ_TOKEN = TOKEN

    def broken_cursor(*args, **kwargs):
        raise OperationalError("disk I/O error at /secret/path")

    monkeypatch.setattr(health.connection, "cursor", broken_cursor)
    response = client.get("/healthz", headers={"X-Doce-Health-Token": TOKEN})
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == {"ok": False, "error": "database unreachable"}
    assert b"/secret/path" not in response.content


@pytest.mark.django_db
def test_it_includes_registered_checks(alice_client, engine_up, monkeypatch):
    monkeypatch.setitem(health._EXTRA_CHECKS, "worker", lambda: (False, {"ok": False}))
    response = alice_client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["worker"] == {"ok": False}


@pytest.mark.django_db
def test_the_dashboard_reads_the_recorded_engine_health(alice_client, engine_down, no_engine_calls):
    body = alice_client.get("/").content.decode()
    assert "Projects can&#x27;t run right now." in body or "Projects can't run right now." in body
    engine_health.record(EngineStatus(True, "20.10.24"))
    assert "run right now" not in alice_client.get("/").content.decode()


@pytest.mark.docker
@pytest.mark.django_db
def test_the_worker_task_records_the_real_docker_engine(alice_client):
    engine_health.record_engine_health()
    row = EngineHealth.objects.get()
    assert row.reachable and row.version
    docker_check = alice_client.get("/healthz").json()["checks"]["docker"]
    assert docker_check["ok"] is True
    assert docker_check["version"] == row.version
