"""Pure rules of productions: content hashing, retention, status transitions, site routes,
domain names."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from doce.edge.config import render_config
from doce.edge.sync import edge_site
from productions import services
from productions.models import (
    Domain,
    IllegalProductionTransition,
    Production,
    Release,
    releases_dir,
)
from productions.releases import choose_pruned, content_hash, pool_assets, prune_pool, tree_size
from productions.routes import edge_routes, serves_host, site_routes, site_url
from projects.models import Project
from projects.services import ProjectActionError


def _tree(root, files: dict[str, bytes]):
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


FILES = {"index.html": b"<h1>Hi</h1>", "_astro/a.css": b"h1{}", "favicon.svg": b"<svg/>"}


def test_the_hash_does_not_depend_on_the_order_files_were_written(tmp_path):
    one = _tree(tmp_path / "one", FILES)
    two = _tree(tmp_path / "two", dict(reversed(list(FILES.items()))))
    assert content_hash(one) == content_hash(two)
    assert len(content_hash(one)) == 64


def test_the_hash_does_not_depend_on_the_walk_order(tmp_path, monkeypatch):
    root = _tree(tmp_path / "site", {**FILES, "b/x": b"1", "a/y": b"2", "c": b"3"})
    expected = content_hash(root)
    real_walk = os.walk

    def reversed_walk(top, *args, **kwargs):
        for folder, dirs, files in real_walk(top, *args, **kwargs):
            dirs.reverse()
            yield folder, dirs, list(reversed(files))

    monkeypatch.setattr(os, "walk", reversed_walk)
    assert content_hash(root) == expected


def test_the_hash_is_path_sensitive(tmp_path):
    one = _tree(tmp_path / "one", {"a.html": b"same"})
    two = _tree(tmp_path / "two", {"b.html": b"same"})
    three = _tree(tmp_path / "three", {"sub/a.html": b"same"})
    assert len({content_hash(one), content_hash(two), content_hash(three)}) == 3


def test_the_hash_sees_bytes_and_boundaries(tmp_path):
    one = _tree(tmp_path / "one", {"a": b"xy", "b": b""})
    two = _tree(tmp_path / "two", {"a": b"x", "b": b"y"})
    three = _tree(tmp_path / "three", {"a": b"xz", "b": b""})
    assert len({content_hash(one), content_hash(two), content_hash(three)}) == 3
    assert tree_size(one) == 2


def test_the_hash_ignores_empty_folders(tmp_path):
    one = _tree(tmp_path / "one", FILES)
    two = _tree(tmp_path / "two", FILES)
    (two / "empty").mkdir()
    assert content_hash(one) == content_hash(two)


@dataclass
class R:
    release_id: str


def test_retention_keeps_the_newest_and_never_the_protected_ones():
    releases = [R(c) for c in "abcdef"]  # newest first
    assert [r.release_id for r in choose_pruned(releases, 3)] == ["d", "e", "f"]
    # the live release is the oldest (a rollback): it stays, the newest three stay too
    assert [r.release_id for r in choose_pruned(releases, 3, protected={"f"})] == ["d", "e"]
    assert [r.release_id for r in choose_pruned(releases, 3, protected={"b", "e"})] == ["d", "f"]
    assert choose_pruned(releases[:2], 3) == []
    assert [r.release_id for r in choose_pruned(releases, 0)] == ["b", "c", "d", "e", "f"]


@pytest.fixture
def project(alice, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    return Project.objects.create(owner=alice, name="Bakery", prompt="a bakery")


def _release(project, digit: str, kind=Release.Kind.STATIC, **fields) -> Release:
    return Release.objects.create(
        project=project, release_id=digit * 64, kind=kind, commit="c" * 40, **fields
    )


@pytest.mark.django_db
def test_static_routes_serve_current_and_the_asset_pool_whatever_release_is_live(project, settings):
    settings.DOCE_SITES_DOMAIN = "sites.example.org"
    first, second = _release(project, "a"), _release(project, "b")
    production = services.production_of(project)
    services.set_production_status(production, Production.Status.QUEUED)
    services.set_production_status(production, Production.Status.LIVE, live_release=first)
    before = render_config(edge_site(), sites=edge_routes())

    [route] = site_routes()
    assert route.root == str(releases_dir(project) / "current")
    assert route.fallback_roots == (str(releases_dir(project) / "_assets"),)
    [edge] = edge_routes()
    assert edge.fallback_paths == ("/_astro/*",)

    # A switch between static releases renders the very same configuration: Caddy reloads
    # nothing (a reload closes idle keep-alive connections); `current` moving is the switch.
    services.set_production_status(production, Production.Status.QUEUED)
    services.set_production_status(production, Production.Status.LIVE, live_release=second)
    assert render_config(edge_site(), sites=edge_routes()) == before

    # Rendered: hashed assets from the live release, else the pool; everything else (pages,
    # misses) from the live release only.
    [site] = [
        r
        for r in before["apps"]["http"]["servers"]["doce"]["routes"]
        if r.get("match") and r["match"][0]["host"] == [edge.host]
    ]
    subroutes = site["handle"][-1]["routes"]
    roots = [route.root, *route.fallback_roots]
    assert [r["match"][0]["file"]["root"] for r in subroutes[:-1]] == roots
    assert all(r["match"][0]["path"] == ["/_astro/*"] for r in subroutes[:-1])
    assert subroutes[-1] == {"handle": [{"handler": "file_server", "root": roots[0]}]}


def test_the_asset_pool_links_each_hashed_asset_once_and_drops_what_no_release_has(tmp_path):
    one, two, pool = tmp_path / "one", tmp_path / "two", tmp_path / "pool"
    for folder, names in ((one, ["a.css", "shared.js"]), (two, ["b.css", "shared.js"])):
        (folder / "_astro").mkdir(parents=True)
        for name in names:
            (folder / "_astro" / name).write_text(f"{folder.name}:{name}")
    (one / "index.html").write_text("page")  # pages never join the pool

    assert pool_assets(one, pool) == 2
    assert pool_assets(two, pool) == 1  # shared.js is there already (same name, same bytes)
    assert pool_assets(tmp_path / "no-assets", pool) == 0
    assert sorted(p.name for p in (pool / "_astro").iterdir()) == ["a.css", "b.css", "shared.js"]
    assert (pool / "_astro" / "a.css").stat().st_ino == (one / "_astro" / "a.css").stat().st_ino

    assert prune_pool(pool, [two]) == 1  # release one pruned: only its own asset goes
    assert sorted(p.name for p in (pool / "_astro").iterdir()) == ["b.css", "shared.js"]


@pytest.mark.django_db
def test_production_status_moves_only_along_its_table(project):
    production = services.production_of(project)
    assert production.status == Production.Status.NONE
    with pytest.raises(IllegalProductionTransition):
        services.set_production_status(production, Production.Status.BUILDING)
    services.set_production_status(production, Production.Status.QUEUED)
    services.set_production_status(production, Production.Status.BUILDING)
    services.set_production_status(production, Production.Status.FAILED, error="broken")
    assert production.last_error == "broken"
    with pytest.raises(IllegalProductionTransition):
        services.set_production_status(production, Production.Status.STARTING)
    services.set_production_status(production, Production.Status.STOPPED)
    # a stop wins over a step that read an older status (compare-and-set)
    with pytest.raises(IllegalProductionTransition):
        services.set_production_status(production, Production.Status.LIVE, from_=Production.ACTIVE)
    production.refresh_from_db()
    assert production.status == Production.Status.STOPPED


@pytest.mark.django_db
def test_routes_render_static_and_server_releases(project, bob, settings):
    settings.DOCE_SITES_DOMAIN = "sites.example.org"
    static = _release(project, "a")
    production = services.production_of(project)
    services.set_production_status(production, Production.Status.QUEUED)
    services.set_production_status(production, Production.Status.LIVE, live_release=static)
    Domain.objects.create(project=project, name="www.bakery.example")
    other = Project.objects.create(owner=bob, name="Other", prompt="x")
    server = _release(other, "b", kind=Release.Kind.SERVER, port=43111)
    other_production = services.production_of(other)
    services.set_production_status(other_production, Production.Status.QUEUED)
    services.set_production_status(other_production, Production.Status.LIVE, live_release=server)
    # a project that never went live has no route
    Project.objects.create(owner=bob, name="Draft", prompt="x")

    routes = {route.project_id: route for route in site_routes()}
    assert set(routes) == {project.id, other.id}
    assert routes[project.id].hosts == (f"s-{project.id}.sites.example.org", "www.bakery.example")
    assert routes[project.id].root == str(releases_dir(project) / "current")
    assert routes[other.id].upstream == "127.0.0.1:43111"

    # As the edge renders them: one route per host.
    config = render_config(edge_site(), sites=edge_routes())
    rendered = {
        route["match"][0]["host"][0]: route["handle"]
        for route in config["apps"]["http"]["servers"]["doce"]["routes"]
        if route.get("match")
        and route["match"][0]["host"][0].endswith(("sites.example.org", "bakery.example"))
    }
    assert set(rendered) == {
        f"s-{project.id}.sites.example.org",
        "www.bakery.example",
        f"s-{other.id}.sites.example.org",
    }
    static_handle = rendered["www.bakery.example"]
    current = str(releases_dir(project) / "current")
    assert static_handle[-1]["handler"] == "subroute"  # hashed assets fall back to the pool
    assert static_handle[-1]["routes"][-1] == {
        "handle": [{"handler": "file_server", "root": current}]
    }
    assert static_handle[-2]["response"]["set"]["X-Content-Type-Options"] == ["nosniff"]
    proxy = rendered[f"s-{other.id}.sites.example.org"][-1]
    assert proxy["handler"] == "reverse_proxy"
    assert proxy["upstreams"] == [{"dial": "127.0.0.1:43111"}]

    # The on-demand TLS ask: live site hosts and attached domains only.
    assert serves_host(f"S-{project.id}.sites.example.org.")
    assert serves_host("www.bakery.example")
    assert not serves_host("other.example.org")
    assert not serves_host("s-0000000000000000.sites.example.org")

    # stopped: no route, whatever the live release was
    services.set_production_status(other_production, Production.Status.STOPPED)
    assert [r.project_id for r in site_routes()] == [project.id]
    assert not serves_host(f"s-{other.id}.sites.example.org")


def test_the_site_url_uses_doces_scheme_and_port(settings):
    settings.DOCE_ORIGIN = "http://localhost:8000"
    settings.DOCE_SITES_DOMAIN = "localhost"
    assert site_url("0123456789abcdef") == "http://s-0123456789abcdef.localhost:8000/"
    settings.DOCE_ORIGIN = "https://doce.example.org"
    settings.DOCE_SITES_DOMAIN = "sites.example.org"
    assert site_url("0123456789abcdef") == "https://s-0123456789abcdef.sites.example.org/"


@pytest.mark.parametrize(
    "name, cleaned",
    [("WWW.Example.org.", "www.example.org"), (" shop.bakery.co.uk ", "shop.bakery.co.uk")],
)
def test_domain_names_are_normalised(name, cleaned, settings):
    settings.DOCE_SITES_DOMAIN = "localhost"
    assert services.clean_domain(name) == cleaned


@pytest.mark.parametrize(
    "name",
    [
        "localhost",
        "example",
        "-bad.example.org",
        "bad-.example.org",
        "a..b.org",
        "exa mple.org",
        "1.2.3.4",
        "é.example.org",
        "x" * 64 + ".org",
        "a." * 127 + "org",
        "s-0123456789abcdef.localhost",
        "*.example.org",
        "example.org/path",
    ],
)
def test_domain_names_are_validated(name, settings):
    settings.DOCE_SITES_DOMAIN = "localhost"
    with pytest.raises(ProjectActionError):
        services.clean_domain(name)
