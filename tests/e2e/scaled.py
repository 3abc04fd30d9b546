"""doce scaled out on this host, as `docs/scaling.md` describes it: Postgres, the Redis channel
layer, `manage.py serve` with N web processes and M workers behind the edge.

`start_scaled(data_dir, webs=2, workers=2)` is a context manager yielding a `Deployment`: a
fresh Postgres database (created here, dropped afterwards) on the machine's server
(`DOCE_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432`), a Redis database on
`DOCE_TEST_REDIS` (default `redis://127.0.0.1:6379`), migrations run once, the runtime
prepared (`prepare_runtime --offline`: images reused when present), an administrator
`alice` with an API token and, when `model_url` is given, the scripted model as her
provider and default model. Used by `tests/e2e/test_scaled.py` and `benchmarks/web.py`;
needs Django settings configured in the calling process (for the
Docker bridge's address).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[2]
MANAGE = [sys.executable, str(ROOT / "manage.py")]
POSTGRES = os.environ.get("DOCE_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432")
REDIS = os.environ.get("DOCE_TEST_REDIS", "redis://127.0.0.1:6379")
PASSWORD = "correct-horse-42"
HEALTHZ_TOKEN = "scaled-healthz-token-5c1e"
START_TIMEOUT_S = 600

PREPARE_CODE = """
import json, os
from django.core.management import call_command
call_command("migrate", interactive=False, verbosity=0)
call_command("collectstatic", interactive=False, verbosity=0)
if os.environ["SCALED_PREPARE_RUNTIME"]:
    call_command("prepare_runtime", offline=True)
from accounts.models import ProviderCredential
from accounts.services import create_api_token, create_first_admin, set_default_model
alice = create_first_admin(username="alice", email="", password=os.environ["SCALED_PASSWORD"])
if os.environ["SCALED_MODEL_URL"]:
    ProviderCredential.objects.create(
        user=alice, kind="openai-compatible", provider_id="scripted", label="Scripted",
        base_url=os.environ["SCALED_MODEL_URL"], model_names=["scripted"],
    )
    set_default_model(alice, "scripted/scripted")
print(json.dumps({"token": create_api_token(alice, "scaled")[1]}))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _free_run(count: int) -> int:
    """The first of `count` consecutive free loopback ports."""
    for _ in range(200):
        base = random.randint(20000, 40000)
        try:
            for port in range(base, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {count} consecutive free ports")


def bridge_address() -> str:
    """The Docker bridge's gateway address (what agents reach the host as), asked the way
    doce asks it (needs Django settings configured)."""
    from doce.docker.engine import bridge_gateway_address

    address = bridge_gateway_address(timeout=30)
    if not address:
        raise RuntimeError("the Docker Engine gave no bridge gateway address")
    return address


@dataclass
class Deployment:
    """A running scaled doce: `url` (doce's public URL, behind the edge), `port`, `token`
    (alice's API token), `cookie` (alice's signed-in session cookie, `name=value`), the
    serve `process`, its `log_path`, `env` and `database`."""

    url: str
    port: int
    token: str
    process: subprocess.Popen
    log_path: Path
    env: dict[str, str]
    database: str
    web_ports: list[int]
    cookie: str = ""
    killed: list[str] = field(default_factory=list)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def api(self, **kwargs) -> httpx.Client:
        """An API client (alice's token) through the edge."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, **kwargs
        )

    def children(self) -> list[tuple[int, list[str]]]:
        """serve's child processes: (pid, argv)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid != self.process.pid:
                    continue
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except (OSError, ValueError, IndexError):
                continue
            found.append((int(entry.name), [a.decode() for a in argv if a]))
        return found

    def web_pid(self, index: int) -> int:
        """The pid of web slot `index`'s daphne."""
        port = str(self.web_ports[index])
        for pid, argv in self.children():
            if "doce.webserver" in argv and port in argv:
                return pid
        raise LookupError(f"no web process on port {port}")

    def answers(self, index: int) -> bool:
        """Whether web slot `index` accepts connections on its loopback port."""
        try:
            with socket.create_connection(("127.0.0.1", self.web_ports[index]), timeout=1):
                return True
        except OSError:
            return False

    def worker_pid(self, worker_id: str) -> int:
        for pid, argv in self.children():
            if "run_worker" in argv and worker_id in argv:
                return pid
        raise LookupError(f"no worker {worker_id}")

    def kill(self, pid: int, what: str) -> None:
        """SIGKILL one child (no grace: a crash); serve restarts it."""
        os.kill(pid, signal.SIGKILL)
        self.killed.append(what)

    def sql(self, query: str, *params) -> list[tuple]:
        """Rows of a read-only query on the deployment's database."""
        with psycopg.connect(f"{POSTGRES}/{self.database}", autocommit=True) as conn:
            return conn.execute(query, params).fetchall()


def _wait_until_up(deployment: Deployment) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if deployment.process.poll() is not None:
            raise RuntimeError(f"serve exited early:\n{deployment.log()[-3000:]}")
        try:
            answer = httpx.get(deployment.url + "/healthz", timeout=2)
            if answer.status_code in (200, 503):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"doce did not answer in {START_TIMEOUT_S} s:\n{deployment.log()[-3000:]}")


def sign_in(url: str) -> str:
    """Sign alice in through the login form; returns the session cookie as `name=value`."""
    with httpx.Client(base_url=url, timeout=30) as client:
        page = client.get("/login")
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert csrf, page.text[:500]
        answer = client.post(
            "/login",
            data={
                "username": "alice",
                "password": PASSWORD,
                "csrfmiddlewaretoken": csrf.group(1),
            },
            headers={"Referer": url + "/login"},
        )
        assert answer.status_code in (200, 302), answer.text[:500]
        for name, value in client.cookies.items():
            if name == "sessionid" or name.endswith("sessionid"):
                return f"{name}={value}"
    raise AssertionError("no session cookie after signing in")


@contextmanager
def start_scaled(
    data_dir: Path,
    *,
    webs: int = 2,
    workers: int = 2,
    model_url: str = "",
    prepare_runtime: bool = True,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Deployment]:
    """Start doce scaled out (see the module docstring) and stop it, dropping its database."""
    database = f"doce_scaled_{os.getpid()}_{random.randint(0, 10**6)}"
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    port, gateway_port = free_port(), free_port()
    web_base = _free_run(2 * webs) if webs > 1 else free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DOCE_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(
        {
            "DOCE_DATA_DIR": str(data_dir),
            "DATABASE_URL": f"{POSTGRES}/{database}",
            "REDIS_URL": f"{REDIS}/{random.randint(1, 15)}",
            "DOCE_PORT": str(port),
            "DOCE_WEB_PORT": str(web_base),
            "DOCE_GATEWAY_PORT": str(gateway_port),
            "DOCE_WEB_REPLICAS": str(webs),
            "DOCE_WORKER_REPLICAS": str(max(workers, 1)),
            "DOCE_EMBEDDED_WORKER": "true" if workers else "false",
            "DOCE_GATEWAY_BIND": f"{bridge_address()},127.0.0.1",
            "DOCE_LOG_FORMAT": "json",
            "DOCE_LOG_LEVEL": os.environ.get("DOCE_LOG_LEVEL", "WARNING"),
            "DOCE_IDLE_STOP_SECONDS": "600",
            "DOCE_WARM_POOL_SIZE": "0",
            "DOCE_HEALTHZ_TOKEN": HEALTHZ_TOKEN,
            **(
                {"DOCE_EXTRA_CA_BUNDLE": os.environ["DOCE_EXTRA_CA_BUNDLE"]}
                if os.environ.get("DOCE_EXTRA_CA_BUNDLE")
                else {}
            ),
            **(extra_env or {}),
        }
    )
    log_path = data_dir / "serve.log"
    process = None
    try:
        # One Django start for every preparation step (each start costs seconds under load).
        made = subprocess.run(
            [*MANAGE, "shell", "-c", PREPARE_CODE],
            cwd=ROOT,
            env={
                **env,
                "SCALED_PASSWORD": PASSWORD,
                "SCALED_MODEL_URL": model_url,
                "SCALED_PREPARE_RUNTIME": "1" if prepare_runtime else "",
            },
            timeout=900,
            capture_output=True,
            text=True,
        )
        if made.returncode:
            raise RuntimeError(f"preparing the deployment failed:\n{made.stderr[-3000:]}")
        token = json.loads(made.stdout.strip().splitlines()[-1])["token"]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [*MANAGE, "serve"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deployment = Deployment(
            url=f"http://localhost:{port}",
            port=port,
            token=token,
            process=process,
            log_path=log_path,
            env=env,
            database=database,
            web_ports=[web_base + i for i in range(webs)],
        )
        _wait_until_up(deployment)
        deployment.cookie = sign_in(deployment.url)
        yield deployment
    finally:
        if process is not None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        _remove_stacks(database)
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _remove_stacks(database: str) -> None:
    """Remove the containers and networks of every project this deployment created (a test
    that failed half-way leaves running stacks otherwise)."""
    import docker

    try:
        with psycopg.connect(f"{POSTGRES}/{database}", autocommit=True) as conn:
            ids = [row[0] for row in conn.execute("SELECT id FROM projects_project")]
    except psycopg.Error:
        return
    client = docker.from_env()
    try:
        for project_id in ids:
            for container in client.containers.list(
                all=True, filters={"label": f"dev.doce.project={project_id}"}
            ):
                container.remove(force=True)
            for network in client.networks.list(names=[f"doce_{project_id}_default"]):
                network.remove()
    finally:
        client.close()
