"""doce scaled out (docs/scaling.md) on real components: Postgres, the Redis channel layer, two
web processes and two workers behind the edge (`manage.py serve` with DOCE_WEB_REPLICAS=2,
DOCE_WORKER_REPLICAS=2), the real Docker Engine with the offline-built images, the pinned
OpenCode driven by the scripted model. Driven through the edge over HTTP and WebSockets (the
browser flow is `test_main_flow.py`; what is proven here is the topology), while a worker and
then each web process in turn are killed (SIGKILL) mid-flow: nothing lost, nothing
duplicated, sockets reconnect and resume.

Not covered: a web process killed while it proxies an agent's model call through the
gateway fails that turn (the stream is cut; the prompt ends `failed` with the provider's
error and can be sent again) — the kills here fall outside model calls on purpose.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import docker
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from tests.e2e.scaled import start_scaled

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

FIRST = "Sunflower Bakery on Elm Street"
SECOND = "Opening hours and weekly specials"
STEP_TIMEOUT_S = 150
# Longer than redis-py 8's 5 s read timeout that used to drop every idle socket.
IDLE_SECONDS = 12
# Each process's Postgres pool, small enough that 50 concurrent clients would exceed what the
# processes may hold together if a pool leaked connections (a worker needs 2 job threads +
# heartbeat + housekeeping).
POOL_SIZE = 4
WEBS = WORKERS = 2


@pytest.fixture(scope="module")
def scaled(tmp_path_factory, scripted_model_url):
    with start_scaled(
        tmp_path_factory.mktemp("doce-scaled"),
        webs=WEBS,
        workers=WORKERS,
        model_url=scripted_model_url,
        extra_env={"DOCE_DB_POOL_SIZE": str(POOL_SIZE)},
    ) as deployment:
        yield deployment


class Follower:
    """Follows a socket through the edge, reconnecting after a drop (an event stream with
    `?after=<last id>`, exactly as the workspace page does); records every message."""

    def __init__(self, scaled, path: str, *, resume: bool = True) -> None:
        self.scaled = scaled
        self.path = path
        self.resume = resume  # outbox streams resume by id; the chat replays its history
        self.events: list[dict] = []
        self.connections = 0
        self.errors: list[str] = []
        self.closed = False

    def uri(self) -> str:
        if not self.resume:
            return f"ws://localhost:{self.scaled.port}{self.path}"
        after = self.events[-1]["id"] if self.events else 0
        return f"ws://localhost:{self.scaled.port}{self.path}?after={after}"

    async def run(self) -> None:
        while not self.closed:
            try:
                async with connect(
                    self.uri(),
                    origin=self.scaled.url,  # type: ignore[arg-type]
                    additional_headers={"Cookie": self.scaled.cookie},
                    open_timeout=10,
                ) as socket:
                    self.connections += 1
                    async for text in socket:
                        self.events.append(json.loads(text))
            except (WebSocketException, OSError, TimeoutError) as exc:
                self.errors.append(repr(exc))
            if not self.closed:
                await asyncio.sleep(0.2)


def _project(scaled, api, project_id: str) -> dict:
    answer = api.get(f"/api/projects/{project_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()


async def _until(predicate, what, timeout: float = STEP_TIMEOUT_S, scaled=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        await asyncio.sleep(0.3)
    tail = scaled.log()[-3000:] if scaled is not None else ""
    what = what() if callable(what) else what
    jobs = ""
    if scaled is not None:
        rows = scaled.sql("SELECT type, state, attempts, last_error FROM queue_job ORDER BY id")
        jobs = "\n".join(" ".join(str(c)[:200] for c in row) for row in rows)
    raise AssertionError(f"timed out waiting for {what}\njobs:\n{jobs}\n{tail}")


def _preview_html(scaled, project: dict) -> str:
    """The preview's page through the edge, after the owner's entry handshake (the API's
    `preview_url` carries a fresh entry token). `p-<id>.localhost` is dialed as loopback with
    its Host header (the resolver here need not know `*.localhost`)."""
    enter = httpx.URL(project["preview_url"])
    assert enter.host.startswith("p-") and enter.path == "/.doce/enter", enter
    host = {"Host": f"{enter.host}:{scaled.port}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{scaled.port}", timeout=20) as client:
        entered = client.get(enter.raw_path.decode(), headers=host)
        assert entered.status_code in (302, 303), entered.text[:300]
        # The preview cookie is `Secure` (a secure context on *.localhost): sent by hand.
        cookie = entered.headers["set-cookie"].split(";", 1)[0]
        page = client.get("/", headers={**host, "Cookie": cookie})
        assert page.status_code == 200, page.text[:300]
        return page.text


def _text(message: dict) -> str:
    return "".join(p["text"] or "" for p in message["parts"] if p["type"] == "text")


def _docker_log(scaled, project_id: str) -> str:
    """The tail of the project's Docker log (what failed, for the assertion message)."""
    path = Path(scaled.env["DOCE_DATA_DIR"]) / "projects" / project_id / "logs" / "docker.log"
    return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def _lease_holder(scaled, project_id: str) -> str | None:
    rows = scaled.sql(
        "SELECT locked_by FROM queue_job WHERE state = 'running' AND payload->>'project_id' = %s",
        project_id,
    )
    return rows[0][0] if rows and rows[0][0] else None


def test_the_main_flow_survives_a_killed_worker_and_a_killed_web_process(scaled):
    asyncio.run(_main_flow(scaled))


async def _main_flow(scaled):
    api = scaled.api(timeout=30)
    created = api.post("/api/projects", json={"prompt": FIRST})
    assert created.status_code == 202, created.text
    project_id = created.json()["id"]
    events = Follower(scaled, f"/ws/projects/{project_id}/events/")
    chat = Follower(scaled, f"/ws/projects/{project_id}/chat/", resume=False)
    follow = [asyncio.create_task(events.run()), asyncio.create_task(chat.run())]
    try:
        # A worker dies holding the create chain's lease (SIGKILL, no grace); serve restarts
        # it under the same id, which releases the lease, and the chain goes on.
        holder = await _until(lambda: _lease_holder(scaled, project_id), "a leased job")
        scaled.kill(scaled.worker_pid(holder), f"worker {holder}")

        # Web process 0 dies while both sockets are open: those it held reconnect through the
        # edge to web process 1 (0 is down until serve has restarted it) and resume after the
        # last event they saw.
        await _until(lambda: events.connections and chat.connections, "both sockets open")
        await asyncio.sleep(1)
        scaled.kill(scaled.web_pid(0), "web process 0")

        await _until(
            lambda: _project(scaled, api, project_id)["prompt"]["state"] in ("completed", "failed"),
            "the first prompt to finish",
            scaled=scaled,
        )
        first = _project(scaled, api, project_id)
        assert first["prompt"] == {"state": "completed", "failure": ""}, (
            first,
            _docker_log(scaled, project_id),
        )
        assert first["status"] == "running"
        html = await asyncio.to_thread(_preview_html, scaled, first)
        assert FIRST in html

        # Now every socket is on web process 1: kill it too (0 is back), and each one must
        # come back through the edge on web process 0.
        await _until(lambda: scaled.answers(0), "web process 0 to be back", scaled=scaled)
        before = (events.connections, chat.connections)
        scaled.kill(scaled.web_pid(1), "web process 1")
        await _until(
            lambda: events.connections > before[0] and chat.connections > before[1],
            lambda: f"both sockets to reconnect: {events.errors[-3:]} {chat.errors[-3:]}",
            timeout=30,
            scaled=scaled,
        )

        # The second prompt through the chat socket (through the edge, to either web process).
        async with connect(
            f"ws://localhost:{scaled.port}/ws/projects/{project_id}/chat/",
            origin=scaled.url,  # type: ignore[arg-type]
            additional_headers={"Cookie": scaled.cookie},
        ) as socket:
            await socket.send(json.dumps({"type": "prompt", "text": SECOND}))
            while True:
                message = json.loads(await asyncio.wait_for(socket.recv(), 30))
                if message["type"] in ("chat.ack", "chat.error", "chat.diagnostic"):
                    break
            assert message["type"] == "chat.ack", message
        await _until(
            lambda: SECOND in _preview_html(scaled, _project(scaled, api, project_id)),
            "the preview to show the second prompt's heading",
            scaled=scaled,
        )
        await _until(
            lambda: _project(scaled, api, project_id)["prompt"]["state"] == "completed",
            "the second prompt to complete",
            scaled=scaled,
        )
        await asyncio.sleep(1)  # the last events reach the followers
    finally:
        events.closed = chat.closed = True
        for task in follow:
            task.cancel()
        await asyncio.gather(*follow, return_exceptions=True)

    assert scaled.killed == [f"worker {holder}", "web process 0", "web process 1"]

    # Nothing duplicated: every job of the chains ran to success once, the conversation holds
    # each prompt once and one answer to each.
    jobs = scaled.sql(
        "SELECT type, state, count(*) FROM queue_job WHERE payload->>'project_id' = %s "
        "GROUP BY type, state ORDER BY type",
        project_id,
    )
    assert all(state == "succeeded" for _, state, _ in jobs), jobs
    counts = {job_type: count for job_type, _, count in jobs}
    for job_type in ("project.create", "docker.composeUp", "opencode.sessionCreate"):
        assert counts.get(job_type) == 1, jobs
    conversation = api.get(f"/api/projects/{project_id}/messages").json()["messages"]
    assert [_text(m) for m in conversation if m["role"] == "user"] == [FIRST, SECOND]
    # One agent run per prompt: the scripted turn (a file write, then its final text) once
    # after each prompt, never twice (a prompt sent twice would run the model twice).
    runs = [[]]  # assistant messages after each user message
    for message in conversation[1:]:
        if message["role"] == "user":
            runs.append([])
        else:
            runs[-1].append(message)
    assert len(runs) == 2
    for run in runs:
        finals = [m for m in run if "Done: the home page now shows" in _text(m)]
        assert len(finals) == 1, [_text(m) for m in run]
        assert all(m["completed_at"] and not m["error"] for m in run), run

    # Nothing lost, nothing duplicated on the event socket: what it received across its
    # reconnects is exactly the project's outbox, in order.
    ids = [event["id"] for event in events.events]
    assert ids == sorted(set(ids)), ids
    outbox = [
        row[0]
        for row in scaled.sql(
            "SELECT id FROM doce_event WHERE topic = %s ORDER BY id", f"project:{project_id}"
        )
    ]
    assert ids == outbox[: len(ids)] and len(ids) >= len(outbox) - 1, (ids, outbox)
    # The chat streamed the agent's work to the followers, through both web processes.
    chat_types = {event["type"] for event in chat.events}
    assert "chat.history" in chat_types and chat_types & {
        "chat.message.part.added",
        "chat.message.part.delta",
        "chat.message.final",
    }, chat_types

    # The Redis layer's idle-socket defect (every socket dropped after 5 to 10 s of silence) and
    # the wake-up across processes, in this deployment: a socket idles, then a stop (its
    # status events written by a web process and a worker) reaches it at once.
    waited = await _idle_then_stop(scaled, api, project_id)
    assert waited < 2.5, waited  # a wake-up, well under the 5 s poll of the Redis setup

    # Delete: the stack and the files go (a worker's job), nothing is left running.
    assert api.delete(f"/api/projects/{project_id}").status_code == 202
    deadline = time.monotonic() + 90
    client = docker.from_env()
    try:
        while time.monotonic() < deadline:
            left = client.containers.list(
                all=True, filters={"label": f"dev.doce.project={project_id}"}
            )
            if not left and api.get(f"/api/projects/{project_id}").status_code == 404:
                break
            time.sleep(0.5)
        assert left == []
    finally:
        client.close()
    api.close()


async def _idle_then_stop(scaled, api, project_id: str) -> float:
    last = scaled.sql(
        "SELECT coalesce(max(id), 0) FROM doce_event WHERE topic = %s", f"project:{project_id}"
    )[0][0]
    async with connect(
        f"ws://localhost:{scaled.port}/ws/projects/{project_id}/events/?after={last}",
        origin=scaled.url,  # type: ignore[arg-type]
        additional_headers={"Cookie": scaled.cookie},
    ) as socket:
        await asyncio.sleep(IDLE_SECONDS)
        stopped = await asyncio.to_thread(api.post, f"/api/projects/{project_id}/stop")
        assert stopped.status_code == 202, stopped.text
        started = time.monotonic()
        message = json.loads(await asyncio.wait_for(socket.recv(), 6))
        waited = time.monotonic() - started
        assert message["id"] > last, message
    return waited


def test_fifty_clients_on_the_dashboard_and_the_api_get_no_errors(scaled):
    """A bounded load check: 50 concurrent clients, each 6 requests alternating between the
    dashboard page (signed in) and the API's project list, through the edge to two web
    processes: every answer is 200, and the deployment holds no more Postgres connections
    than its processes' pools allow."""

    async def client(index: int, results: list) -> None:
        headers = (
            {"Cookie": scaled.cookie} if index % 2 else {"Authorization": f"Bearer {scaled.token}"}
        )
        path = "/" if index % 2 else "/api/projects"
        async with httpx.AsyncClient(base_url=scaled.url, headers=headers, timeout=30) as http:
            for _ in range(6):
                try:
                    answer = await http.get(path)
                    results.append(answer.status_code)
                except httpx.HTTPError as exc:
                    results.append(repr(exc))

    async def connections(done: asyncio.Event) -> int:
        """The most connections the deployment held while the clients ran (sampled)."""
        most = 0
        while not done.is_set():
            rows = await asyncio.to_thread(
                scaled.sql,
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            most = max(most, rows[0][0])
            await asyncio.sleep(0.05)
        return most

    async def scenario() -> tuple[list, int]:
        results: list = []
        done = asyncio.Event()
        sampler = asyncio.create_task(connections(done))
        await asyncio.gather(*(client(i, results) for i in range(50)))
        done.set()
        return results, await sampler

    results, most = asyncio.run(scenario())
    assert len(results) == 300
    assert [r for r in results if r != 200] == []
    # Every process within its pool (serve's own process too), plus each worker's LISTEN
    # connection: without the pools, 50 concurrent requests held up to one each.
    assert 0 < most <= (WEBS + WORKERS + 1) * POOL_SIZE + WORKERS, most
