"""The edge's configuration renderer: a pure function of doce's settings and routes."""

from __future__ import annotations

import json
import subprocess

import pytest

from doce.edge.binary import caddy_binary
from doce.edge.config import (
    AUTH_PATH,
    PROJECT_HEADER,
    EdgeGateway,
    EdgeLimits,
    EdgeSite,
    EdgeTls,
    PreviewRoute,
    SiteRoute,
    render_config,
)

SITE = EdgeSite(
    listen_host="127.0.0.1",
    listen_port=8000,
    doce_domain="localhost",
    preview_domain="localhost",
    upstreams=("127.0.0.1:8001",),
    admin_socket="/run/doce/admin.sock",
    limits=EdgeLimits(upload_paths=("/projects/*/assets/upload",)),
)


def _routes(config: dict) -> list[dict]:
    return config["apps"]["http"]["servers"]["doce"]["routes"]


def _host_route(config: dict, host: str) -> dict:
    for route in _routes(config):
        for match in route.get("match", []):
            if host in match.get("host", []):
                return route
    raise AssertionError(f"no route for {host}")


def _handlers(route: dict) -> list[list[dict]]:
    return [r["handle"] for r in route["handle"][0]["routes"]]


def test_doce_host_goes_to_daphne_with_body_limits():
    config = render_config(SITE)
    server = config["apps"]["http"]["servers"]["doce"]
    assert server["listen"] == ["127.0.0.1:8000"]
    assert server["automatic_https"] == {"disable": True}
    assert config["admin"]["listen"] == "unix//run/doce/admin.sock"
    sub = _host_route(config, "localhost")["handle"][0]["routes"]
    # /.doce/* belongs to preview hosts: 404 on doce's own host.
    assert sub[0]["match"] == [{"path": ["/.doce/*"]}]
    assert sub[0]["handle"][0]["status_code"] == 404
    # Uploads: the assets limit plus headroom; everything else 1 MiB; both to daphne.
    assert sub[1]["match"] == [{"path": ["/projects/*/assets/upload"]}]
    assert sub[1]["handle"][0] == {"handler": "request_body", "max_size": 11 * 1024 * 1024}
    assert sub[2]["handle"][0] == {"handler": "request_body", "max_size": 1024 * 1024}
    assert sub[2]["handle"][1]["upstreams"] == [{"dial": "127.0.0.1:8001"}]
    assert server["max_header_bytes"] == 64 * 1024
    assert server["read_header_timeout"] == "10000ms"


def test_unknown_hosts_get_404():
    config = render_config(SITE, [PreviewRoute("abc123", 42000)])
    last = _routes(config)[-1]
    assert "match" not in last
    assert last["handle"][0]["handler"] == "static_response"
    assert last["handle"][0]["status_code"] == 404


def test_each_preview_is_checked_then_proxied_to_its_loopback_port():
    config = render_config(SITE, [PreviewRoute("bbb", 42002), PreviewRoute("aaa", 42000)])
    hosts = [r["match"][0]["host"][0] for r in _routes(config)[1:-1]]
    assert hosts == ["p-aaa.localhost", "p-bbb.localhost"]  # sorted: same state, same config
    enter, dotdoce, rest = _handlers(_host_route(config, "p-aaa.localhost"))
    assert enter[1]["headers"]["request"]["set"][PROJECT_HEADER] == ["aaa"]
    assert dotdoce[0]["status_code"] == 404
    limit, auth, proxy = rest
    assert limit == {"handler": "request_body", "max_size": 10 * 1024 * 1024}
    assert auth["rewrite"] == {"method": "GET", "uri": AUTH_PATH}
    assert auth["upstreams"] == [{"dial": "127.0.0.1:8001"}]
    # The project comes from the configuration, never from the client.
    assert auth["headers"]["request"]["set"][PROJECT_HEADER] == ["aaa"]
    assert proxy["upstreams"] == [{"dial": "127.0.0.1:42000"}]


def test_sites_are_public_and_may_not_take_another_routes_host():
    config = render_config(SITE, sites=[SiteRoute("www.example.org", 43000)])
    route = _host_route(config, "www.example.org")
    # Sites get their security headers (nosniff) between the body limit and the proxy.
    assert [h["handler"] for h in route["handle"]] == ["request_body", "headers", "reverse_proxy"]
    with pytest.raises(ValueError):
        render_config(SITE, [PreviewRoute("aaa", 42000)], [SiteRoute("p-aaa.localhost", 1)])
    with pytest.raises(ValueError):
        render_config(SITE, [PreviewRoute("aaa", 0)])


def test_tls_modes():
    acme = EdgeSite(
        **{
            **SITE.__dict__,
            "listen_port": 443,
            "tls": EdgeTls("acme", ask_url="http://127.0.0.1:8001/.doce/ask"),
        }
    )
    config = render_config(acme, [PreviewRoute("aaa", 42000)])
    policies = config["apps"]["tls"]["automation"]["policies"]
    assert policies[0] == {"subjects": ["localhost"], "issuers": [{"module": "acme"}]}
    assert policies[1]["subjects"] == ["p-aaa.localhost"] and policies[1]["on_demand"]
    ask = config["apps"]["tls"]["automation"]["on_demand"]["permission"]
    assert ask == {"module": "http", "endpoint": "http://127.0.0.1:8001/.doce/ask"}
    assert config["apps"]["http"]["servers"]["doce"]["automatic_https"] == {
        "disable_redirects": False
    }
    internal = EdgeSite(**{**SITE.__dict__, "tls": EdgeTls("internal")})
    rendered = render_config(internal)
    policies = rendered["apps"]["tls"]["automation"]["policies"]
    assert policies[0]["issuers"] == [{"module": "internal"}]
    # Caddy must not install its root into the machine's trust store.
    local = rendered["apps"]["pki"]["certificate_authorities"]["local"]
    assert local == {"install_trust": False}
    files = EdgeSite(
        **{**SITE.__dict__, "tls": EdgeTls("files", cert_file="/c.pem", key_file="/k.pem")}
    )
    tls = render_config(files)["apps"]["tls"]
    assert tls["certificates"] == {"load_files": [{"certificate": "/c.pem", "key": "/k.pem"}]}


SCALED = EdgeSite(
    **{
        **SITE.__dict__,
        "upstreams": ("127.0.0.1:8003", "127.0.0.1:8004"),
        "gateway": EdgeGateway(
            listen=("127.0.0.1:8002",), upstreams=("127.0.0.1:8005", "127.0.0.1:8006")
        ),
    }
)  # type: ignore[arg-type]


def test_it_load_balances_several_web_processes_everywhere_daphne_is_dialed():
    config = render_config(SCALED, [PreviewRoute("aaa", 42000)])
    text = json.dumps(config)
    assert "127.0.0.1:8001" not in text
    proxies = [
        handler
        for handler in _all_handlers(config)
        if handler["handler"] == "reverse_proxy" and len(handler["upstreams"]) > 1
    ]
    # doce's host (upload path and the rest), the preview's enter path and its check, the gateway.
    assert len(proxies) == 5
    for proxy in proxies:
        assert proxy["load_balancing"]["selection_policy"] == {"policy": "round_robin"}
        assert proxy["load_balancing"]["try_duration"] == "10s"
        assert proxy["health_checks"]["passive"]["max_fails"] == 1
    gateway = config["apps"]["http"]["servers"]["gateway"]
    assert gateway["listen"] == ["127.0.0.1:8002"]
    assert gateway["routes"][0]["handle"][0]["upstreams"] == [
        {"dial": "127.0.0.1:8005"},
        {"dial": "127.0.0.1:8006"},
    ]
    assert gateway["routes"][0]["handle"][0]["flush_interval"] == -1


def test_one_web_process_gets_no_load_balancing_and_no_gateway_front():
    config = render_config(SITE, [PreviewRoute("aaa", 42000)])
    assert "load_balancing" not in json.dumps(config)
    assert list(config["apps"]["http"]["servers"]) == ["doce"]


def test_it_refuses_a_site_without_web_upstreams():
    with pytest.raises(ValueError, match="web upstream"):
        render_config(EdgeSite(**{**SITE.__dict__, "upstreams": ()}))  # type: ignore[arg-type]


def _all_handlers(node):
    if isinstance(node, dict):
        if "handler" in node:
            yield node
        for value in node.values():
            yield from _all_handlers(value)
    elif isinstance(node, list):
        for value in node:
            yield from _all_handlers(value)


@pytest.mark.parametrize("mode", ["off", "internal", "acme", "scaled"])
def test_caddy_accepts_the_rendered_configuration(tmp_path, mode):
    base = SCALED if mode == "scaled" else SITE
    site = EdgeSite(
        **{
            **base.__dict__,
            "admin_socket": str(tmp_path / "a.sock"),
            "tls": EdgeTls(
                "off" if mode == "scaled" else mode, ask_url="http://127.0.0.1:8001/.doce/ask"
            ),
        }
    )  # type: ignore[arg-type]
    sites = [
        SiteRoute("example.org", 43000),
        SiteRoute(
            "static.example.org",
            root=str(tmp_path / "b"),
            fallback_roots=(str(tmp_path / "a"),),
            fallback_paths=("/_astro/*",),
        ),
    ]
    config = render_config(site, [PreviewRoute("aaa", 42000)], sites)
    path = tmp_path / "caddy.json"
    path.write_text(json.dumps(config))
    checked = subprocess.run(
        [caddy_binary(), "validate", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert checked.returncode == 0, checked.stderr[-2000:]
