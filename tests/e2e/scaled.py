"""doce scaled out on this host, as `docs/scaling.md` describes it, two ways.

`start_compose(data_dir, webs=2, workers=2, model_url=...)`: the compose deployment itself,
brought up by `scripts/scale-up --offline` (Postgres, Redis, the edge, web and worker
containers; images built from Debian packages, named from `DOCE_TEST_COMPOSE_PREFIX`,
default `doce-e2e`), yielding a `ComposeDeployment` that can `docker kill` or crash its
containers. Used by `tests/e2e/test_scaled.py` (CI).

`start_scaled(data_dir, webs=2, workers=2)`: the same topology as processes, `manage.py
serve` with N web processes and M workers behind the edge, yielding a `Deployment`: a
fresh Postgres database (created here, dropped afterwards) on the machine's server
(`DOCE_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432`), a Redis database on
`DOCE_TEST_REDIS` (default `redis://127.0.0.1:6379`), migrations run once, the runtime
prepared (`prepare_runtime --offline`: images reused when present). Used by
`benchmarks/web.py`.

Both create an administrator `alice` with an API token and, when `model_url` is given, the
scripted model as her provider and default model, and need Django settings configured in
the calling process (for the Docker bridge's address).
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

import docker
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
if os.environ["SCALED_MIGRATE"]:
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


def port_answers(port: int) -> bool:
    """Whether something accepts connections on loopback `port` (1 s timeout)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


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
        return port_answers(self.web_ports[index])

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
        return _sql(f"{POSTGRES}/{self.database}", query, *params)


def _sql(dsn: str, query: str, *params) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True) as conn:
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
                "SCALED_MIGRATE": "1",
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
        _remove_stacks(f"{POSTGRES}/{database}")
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _remove_stacks(dsn: str) -> None:
    """Remove the containers and networks of every project this deployment created (a test
    that failed half-way leaves running stacks otherwise)."""
    try:
        ids = [row[0] for row in _sql(dsn, "SELECT stack_name FROM projects_project")]
    except psycopg.Error:
        return
    client = docker.from_env()
    try:
        for stack_name in ids:
            for container in client.containers.list(
                all=True, filters={"label": f"dev.doce.project={stack_name}"}
            ):
                container.remove(force=True)
            for network in client.networks.list(names=[f"doce_{stack_name}_default"]):
                network.remove()
    finally:
        client.close()


# --- The scaled compose deployment ------------------------------------------------------------

SCALE_UP = ROOT / "scripts" / "scale-up"
COMPOSE_FILES = ["compose/docker-compose.scale.yml", "compose/docker-compose.offline.yml"]
# Images and compose projects are named from this prefix: `<prefix>:latest` (doce),
# `<prefix>-postgres:15`, `<prefix>-redis:7`, compose projects `<prefix>-<pid>`.
COMPOSE_PREFIX = os.environ.get("DOCE_TEST_COMPOSE_PREFIX", "doce-e2e")
# A worker killed holding a lease: the other worker takes its jobs over once the lease has
# expired (heartbeats every 5 s keep a live worker's leases).
COMPOSE_LEASE_SECONDS = 20


def compose_command() -> list[str]:
    """`docker compose` (v2) when installed, else `docker-compose` (v1), as scale-up picks."""
    done = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return ["docker", "compose"] if done.returncode == 0 else ["docker-compose"]


@dataclass
class ComposeDeployment:
    """doce brought up by `scripts/scale-up --offline` (compose project `project`): `url`,
    `port`, `token`, `cookie` as in `Deployment`; `env` (what compose and the containers
    were given: DOCE_DATA_DIR, ports), `dsn` (the Postgres container, published on
    loopback), `web_ports` (slot i's port), and the kills and crashes the test applied."""

    project: str
    url: str
    port: int
    env: dict[str, str]
    dsn: str
    web_ports: list[int]
    token: str = ""
    cookie: str = ""
    killed: list[str] = field(default_factory=list)
    # Seconds from the start: scale-up done, edge and web slots answering, alice signed in.
    timings: dict[str, float] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*compose_command(), *(a for f in COMPOSE_FILES for a in ("-f", f)), *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def containers(self, service: str, *, running: bool = True) -> list:
        """The Docker SDK containers of `service` (oldest first)."""
        client = docker.from_env()
        try:
            found = client.containers.list(
                all=not running,
                filters={
                    "label": [
                        f"com.docker.compose.project={self.project}",
                        f"com.docker.compose.service={service}",
                    ]
                },
            )
        finally:
            client.close()
        return sorted(found, key=lambda c: c.attrs["Created"])

    def health(self, service: str) -> list[str]:
        """The health status of each running container of `service` (e.g. "healthy",
        "starting"; "none" without a health check)."""
        return [
            c.attrs["State"].get("Health", {}).get("Status", "none")
            for c in self.containers(service)
        ]

    def web_container(self, index: int):
        """The running web container holding web slot `index` (its port is in the file
        `serve --only web` writes for the health check)."""
        for container in self.containers("web"):
            code, output = container.exec_run(["cat", "/tmp/doce-web-port"])
            if code == 0 and output.decode().strip() == str(self.web_ports[index]):
                return container
        raise LookupError(f"no web container holds slot {index}")

    def worker_container(self, worker_id: str):
        """The worker container whose worker id (`<host>:container-<12 hex>`) is `worker_id`."""
        short = worker_id.rpartition(":container-")[2]
        for container in self.containers("worker"):
            if short and container.id.startswith(short):
                return container
        raise LookupError(f"no worker container is {worker_id}")

    def docker_kill(self, container, what: str) -> None:
        """`docker kill`: SIGKILL, no grace, and a stop by hand: Docker leaves it down."""
        subprocess.run(["docker", "kill", container.id], check=True, capture_output=True)
        self.killed.append(what)

    def crash(self, container, what: str) -> None:
        """SIGKILL the container's first process from the host: a crash, which its restart
        policy answers (unlike `docker kill`)."""
        container.reload()
        os.kill(container.attrs["State"]["Pid"], signal.SIGKILL)
        self.killed.append(what)

    def answers(self, index: int) -> bool:
        """Whether web slot `index` accepts connections on its loopback port."""
        return port_answers(self.web_ports[index])

    def sql(self, query: str, *params) -> list[tuple]:
        """Rows of a read-only query on the deployment's database."""
        return _sql(self.dsn, query, *params)

    def api(self, **kwargs) -> httpx.Client:
        """An API client (alice's token) through the edge."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, **kwargs
        )

    def log(self) -> str:
        """The last lines of every container of the deployment."""
        return self.compose("logs", "--no-color", "--tail", "40", timeout=60).stdout


@contextmanager
def start_compose(
    data_dir: Path,
    *,
    webs: int = 2,
    workers: int = 2,
    model_url: str = "",
    extra_env: dict[str, str] | None = None,
) -> Iterator[ComposeDeployment]:
    """Bring doce up with `scripts/scale-up --offline` (compose/docker-compose.scale.yml and
    compose/docker-compose.offline.yml: images built from Debian packages, build cache
    reused) on its own ports and compose project, wait until the edge answers and every
    web slot is up, create alice (as in `start_scaled`) inside a web container, yield a
    `ComposeDeployment`, and take it all down afterwards (volumes and project stacks
    included). `data_dir` is mounted at the same path in the containers; `extra_env` goes
    to compose (the compose file's own variables) and into the containers' env file. Raises
    `RuntimeError` with the output when scale-up or the start fails."""
    project = f"{COMPOSE_PREFIX}-{os.getpid()}"
    port, gateway_port, pg_port, redis_port = free_port(), free_port(), free_port(), free_port()
    web_base = _free_run(2 * webs)
    env_file = data_dir / "doce.env"
    settings = {
        "DOCE_PORT": port,
        "DOCE_WEB_PORT": web_base,
        "DOCE_GATEWAY_PORT": gateway_port,
        "DOCE_LOG_FORMAT": "json",
        "DOCE_LOG_LEVEL": os.environ.get("DOCE_LOG_LEVEL", "WARNING"),
        "DOCE_IDLE_STOP_SECONDS": 600,
        "DOCE_HEALTHZ_TOKEN": HEALTHZ_TOKEN,
        "DOCE_QUEUE_LEASE_SECONDS": COMPOSE_LEASE_SECONDS,
        "DOCE_PROD_DRAIN_SECONDS": 3,  # the deploy's retire job runs this long after it
        # The cold create chain is what the scenario counts (and no warm stack is left over).
        "DOCE_WARM_POOL_SIZE": 0,
        "DOCE_EXTRA_CA_BUNDLE": os.environ.get("DOCE_EXTRA_CA_BUNDLE", ""),
        **(extra_env or {}),
    }
    env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    password = f"pg-{random.randint(10**8, 10**9)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCE_", "DATABASE_URL"))}
    env.update(
        {
            "COMPOSE_PROJECT_NAME": project,
            "DOCE_ENV_FILE": str(env_file),
            "DOCE_DATA_DIR": str(data_dir),
            "DOCE_IMAGE": f"{COMPOSE_PREFIX}:latest",
            "DOCE_POSTGRES_IMAGE": f"{COMPOSE_PREFIX}-postgres:15",
            "DOCE_REDIS_IMAGE": f"{COMPOSE_PREFIX}-redis:7",
            "DOCE_POSTGRES_PASSWORD": password,
            "DOCE_POSTGRES_PORT": str(pg_port),
            "DOCE_REDIS_PORT": str(redis_port),
            "DOCE_WEB_REPLICAS": str(webs),
            "DOCE_WORKER_REPLICAS": str(workers),
            "DOCE_GATEWAY_BIND": f"{bridge_address()},127.0.0.1",
            **(
                {"DOCE_EXTRA_CA_BUNDLE": os.environ["DOCE_EXTRA_CA_BUNDLE"]}
                if os.environ.get("DOCE_EXTRA_CA_BUNDLE")
                else {}
            ),
            **(extra_env or {}),
        }
    )
    deployment = ComposeDeployment(
        project=project,
        url=f"http://localhost:{port}",
        port=port,
        env=env,
        dsn=f"postgres://doce:{password}@127.0.0.1:{pg_port}/doce",
        web_ports=[web_base + i for i in range(webs)],
    )
    log_path = data_dir / "scale-up.log"
    started = time.monotonic()
    try:
        with log_path.open("wb") as log:
            up = subprocess.run(
                [str(SCALE_UP), "--offline"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=START_TIMEOUT_S,
                check=False,
            )
        if up.returncode:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"scripts/scale-up --offline failed ({up.returncode}):\n{tail}")
        deployment.timings["scale_up_s"] = round(time.monotonic() - started, 1)
        _wait_for_compose(deployment)
        deployment.timings["serving_s"] = round(time.monotonic() - started, 1)
        made = deployment.web_container(0).exec_run(
            ["python", "manage.py", "shell", "-c", PREPARE_CODE],
            environment={
                "SCALED_PASSWORD": PASSWORD,
                "SCALED_MODEL_URL": model_url,
                "SCALED_MIGRATE": "",  # the compose file's `migrate` did it, once
                "SCALED_PREPARE_RUNTIME": "",  # ... and prepared the runtime
            },
            demux=True,
        )
        if made.exit_code:
            raise RuntimeError(f"creating alice failed:\n{(made.output[1] or b'').decode()}")
        deployment.token = json.loads(made.output[0].decode().strip().splitlines()[-1])["token"]
        deployment.cookie = sign_in(deployment.url)
        deployment.timings["ready_s"] = round(time.monotonic() - started, 1)
        print(f"compose deployment up: {json.dumps(deployment.timings)}")
        yield deployment
    finally:
        (data_dir / "compose.log").write_text(
            deployment.compose("logs", "--no-color", timeout=120).stdout
        )
        _remove_stacks(deployment.dsn)
        down = deployment.compose("down", "--volumes", "--remove-orphans", timeout=180)
        if down.returncode:
            raise RuntimeError(f"compose down failed:\n{down.stderr[-2000:]}")


def _wait_for_compose(deployment: ComposeDeployment) -> None:
    """Until the edge answers /healthz and every web slot accepts connections."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(deployment.url + "/healthz", timeout=2)
            up = answer.status_code in (200, 503)
        except httpx.TransportError:
            up = False
        if up and all(deployment.answers(i) for i in range(len(deployment.web_ports))):
            return
        time.sleep(0.5)
    raise RuntimeError(f"doce did not come up in {START_TIMEOUT_S} s:\n{deployment.log()[-4000:]}")
