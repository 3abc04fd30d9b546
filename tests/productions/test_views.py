"""The Deploy tab and its actions; the dashboard's site badge."""

from __future__ import annotations

import re

import pytest

from jobqueue.models import Job
from productions import services
from productions.models import Domain, Production, Release
from projects.models import Project

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(alice, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    return Project.objects.create(owner=alice, name="Bakery", prompt="a bakery")


def test_the_deploy_tab_shows_state_releases_and_domains(alice_client, project):
    old = Release.objects.create(project=project, release_id="a" * 64, kind="static", commit="1")
    new = Release.objects.create(project=project, release_id="b" * 64, kind="static", commit="2")
    production = services.production_of(project)
    services.set_production_status(production, Production.Status.QUEUED)
    services.set_production_status(production, Production.Status.LIVE, live_release=new)
    Domain.objects.create(project=project, name="www.bakery.example")
    page = alice_client.get(f"/projects/{project.id}/deploy/?embed=1")
    assert page.status_code == 200
    body = page.content.decode()
    assert f"http://s-{project.id}.localhost" in body
    assert new.short_id in body and old.short_id in body and "Rollback" in body
    assert "www.bakery.example" in body
    assert page.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_another_users_deploy_tab_and_actions_are_404(bob_client, project):
    base = f"/projects/{project.id}/deploy/"
    assert bob_client.get(base).status_code == 404
    for action in ("run", "stop", "domains/add", "domains/remove", f"releases/{'a' * 64}/activate"):
        assert bob_client.post(base + action, {"name": "x.example.org"}).status_code == 404
    assert not Job.objects.exists() and not Domain.objects.exists()


def test_deploy_stop_and_domains_from_the_tab(alice_client, project):
    base = f"/projects/{project.id}/deploy/"
    response = alice_client.post(base + "run", {"embed": "1"})
    assert response.status_code == 302 and response.url == base + "?embed=1"
    assert list(Job.objects.values_list("type", flat=True)) == [services.BUILD]
    # a second deploy while one runs: a message, not an error page
    again = alice_client.post(base + "run", follow=True)
    assert again.status_code == 200 and "already on its way" in again.content.decode()
    alice_client.post(base + "domains/add", {"name": "Shop.Example.org"})
    assert list(Domain.objects.values_list("name", flat=True)) == ["shop.example.org"]
    bad = alice_client.post(base + "domains/add", {"name": "no spaces.org"}, follow=True)
    assert "Enter a domain name" in bad.content.decode()
    alice_client.post(base + "domains/remove", {"name": "shop.example.org"})
    assert not Domain.objects.exists()
    alice_client.post(base + "stop")
    assert Production.objects.get(pk=project.pk).status == Production.Status.STOPPED


def test_the_dashboard_shows_a_site_badge_with_its_link(alice_client, alice, project):
    release = Release.objects.create(
        project=project, release_id="a" * 64, kind="static", commit="1"
    )
    production = services.production_of(project)
    services.set_production_status(production, Production.Status.QUEUED)
    services.set_production_status(production, Production.Status.LIVE, live_release=release)
    Project.objects.create(owner=alice, name="Draft", prompt="x")
    body = alice_client.get("/").content.decode()
    assert body.count("Site: Live") == 1
    assert f'href="http://s-{project.id}.localhost' in body


@pytest.mark.parametrize("page", ["deploy", "workspace", "dashboard"])
def test_a_change_committed_while_a_page_renders_is_replayed_to_it(
    alice_client, project, monkeypatch, page
):
    """The stream cursor a page renders is read before its state: a change that commits
    between the two reads is after the cursor, so the page's stream replays it (read after
    the state, it was in neither, and a Deploy tab kept the old release live for good)."""
    from doce import events
    from projects import views as project_views
    from projects.models import project_topic

    committed = []

    def change_meanwhile(real):
        def wrapper(*args, **kwargs):
            result = real(*args, **kwargs)  # the state as the page shows it, already read
            committed.append(events.emit(project_topic(project.id), "production.status", {}))
            return result

        return wrapper

    if page == "deploy":
        monkeypatch.setattr(services, "status_payload", change_meanwhile(services.status_payload))
        url = f"/projects/{project.id}/deploy/?embed=1"
    elif page == "workspace":
        real = project_views.setup_checklist
        monkeypatch.setattr(project_views, "setup_checklist", change_meanwhile(real))
        url = f"/projects/{project.id}/"
    else:
        real = project_views.dashboard_cards
        monkeypatch.setattr(project_views, "dashboard_cards", change_meanwhile(real))
        url = "/"
    body = alice_client.get(url).content.decode()
    (cursor,) = set(re.findall(r'data-last-event-id="(\d+)"', body))
    assert committed and int(cursor) < committed[0].id
