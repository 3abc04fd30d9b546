"""The warm pool (issue 15) on the real Engine, the pinned OpenCode agent, the model gateway
and the scripted model. One warm stack serves every assertion, to keep CI lean:

1. `pool.fill` starts a warm stack (preview compiled, agent answering) that holds no secret
   and no user data: not in `docker inspect` (env, labels, mounts), not in its files.
2. Two creates with a pool of one: the first claims the warm stack (its preview is shown
   before its agent is ready; the agent gets the owner's providers at claim and answers the
   prompt through the gateway), the second starts cold; both answer their prompts.
3. The pool refills in the background; a new template or image fingerprint discards the
   entry (a `pool.discard` job takes its stack and files away).
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from django.test.utils import override_settings

from accounts.models import ProviderCredential
from doce.docker.engine import engine_client
from doce.docker.stacks import stack_status
from jobqueue.models import Job
from jobqueue.worker import Worker
from projects import pool, services
from projects.models import AgentState, PoolEntry, Project
from projects.reconcile import reconcile
from projects.runtime import delete_files, stack_down
from tests.gateway.server import shared_gateway_listener
from tests.integration.test_instant import first_running_event, fresh, run_worker_until
from tests.scripted_model import ScriptedModelServer

pytest_plugins = ["tests.fixtures_runtime"]
pytestmark = [
    pytest.mark.docker,
    pytest.mark.opencode,
    pytest.mark.timeout(600),
    pytest.mark.django_db(transaction=True),
]

KEY = "PLANTEDwarmKEY4d81b6"


def ready_entry() -> PoolEntry | None:
    return PoolEntry.objects.filter(state=PoolEntry.State.READY).first()


def inspect_text(stack_name: str) -> str:
    """Everything `docker inspect` says of a stack's containers that a secret could be in:
    env, labels, command, mounts."""
    client = engine_client()
    try:
        parts = []
        for state in stack_status(stack_name).containers.values():
            attrs = client.containers.get(state.id).attrs
            config = attrs["Config"]
            parts.append(
                json.dumps([config.get("Env"), config.get("Labels"), config.get("Cmd")])
                + json.dumps(attrs.get("Mounts"))
            )
        return "\n".join(parts)
    finally:
        client.close()


def files_text(entry: PoolEntry) -> str:
    """The text of the entry's files, apart from the shared dependency store's links."""
    texts = []
    for path in entry.root_dir.rglob("*"):
        if "node_modules" in path.parts or ".git" in path.parts or not path.is_file():
            continue
        texts.append(path.read_bytes().decode(errors="replace"))
    return "\n".join(texts)


def test_warm_pool_claim_refill_and_replacement(runtime_images, alice, settings):
    listener = shared_gateway_listener()
    model = ScriptedModelServer("127.0.0.1", 0, required_key=KEY).start()
    worker = Worker(worker_id="pool-test", concurrency=1, housekeeping=False)
    projects: list[Project] = []
    try:
        with override_settings(DOCE_GATEWAY_PORT=listener.port, DOCE_WARM_POOL_SIZE=1):
            ProviderCredential.objects.create(
                user=alice,
                kind="openai-compatible",
                provider_id="local",
                label="Local model",
                base_url=model.base_url,
                api_key=KEY,
                model_names=["scripted"],
            )
            # 1. A warm stack: started ahead of time, with nobody's settings in it.
            filled_at = time.monotonic()
            pool.request_refill()
            run_worker_until(worker, lambda: ready_entry() is not None, what="a warm stack")
            print(f"warm stack ready after {time.monotonic() - filled_at:.1f} s")
            entry = ready_entry()
            assert stack_status(entry.stack_name).running
            # Reconciliation knows the warm stack (it belongs to no project yet).
            assert entry.stack_name not in reconcile(follow_logs=False).removed
            config = json.loads((entry.root_dir / "stack/agent-config/opencode.json").read_text())
            assert "provider" not in config and "model" not in config
            for text in (inspect_text(entry.stack_name), files_text(entry)):
                assert KEY not in text
                assert "doce_gw_" not in text  # no gateway token before a claim
                assert "alice" not in text
                assert model.base_url not in text

            # 2. Two creates with a pool of one: one claims, one starts cold.
            created_at = time.monotonic()
            warm = services.create_project(
                alice, prompt="Bakery by the sea", model="local/scripted"
            )
            cold = services.create_project(alice, prompt="Florist in town", model="local/scripted")
            projects += [warm, cold]
            assert (fresh(warm).stack_name, warm.directory) == (entry.id, entry.directory)
            assert fresh(cold).stack_name == cold.id
            assert not PoolEntry.objects.filter(pk=entry.pk).exists()
            run_worker_until(
                worker, lambda: fresh(warm).status == Project.Status.RUNNING, what="warm running"
            )
            running_after = time.monotonic() - created_at
            page = httpx.get(f"http://127.0.0.1:{warm.preview_port}/", timeout=30)
            assert page.status_code == 200
            first_running = first_running_event(warm)
            # Viewable before the agent had the owner's config (it is reloaded after).
            assert first_running.payload["agent_state"] == AgentState.STARTING
            run_worker_until(
                worker,
                lambda: fresh(warm).prompt_state in ("completed", "failed"),
                what="the warm project's prompt",
            )
            assert warm.prompt_state == "completed", warm.prompt_failure
            page_after = time.monotonic() - created_at
            print(f"warm: running after {running_after:.2f} s, page after {page_after:.1f} s")
            page = httpx.get(f"http://127.0.0.1:{warm.preview_port}/", timeout=30)
            assert "<h1>Bakery by the sea</h1>" in page.text
            # The agent reached the model through the gateway with the token issued at claim.
            assert warm.gateway_token_digest
            assert f"Bearer {KEY}" in model.keys_seen
            run_worker_until(
                worker,
                lambda: fresh(cold).prompt_state in ("completed", "failed"),
                what="the cold project's prompt",
            )
            assert cold.prompt_state == "completed", cold.prompt_failure
            assert (
                "<h1>Florist in town</h1>"
                in httpx.get(f"http://127.0.0.1:{cold.preview_port}/", timeout=30).text
            )

            # 3. The claim queued a refill: the pool is back to one warm stack.
            run_worker_until(worker, lambda: ready_entry() is not None, what="the refill")
            refill = ready_entry()
            assert refill.id not in (warm.stack_name, cold.stack_name)
            # A new template or image: the entry is discarded, stack and files.
            PoolEntry.objects.filter(pk=refill.pk).update(fingerprint="0" * 32)
            assert pool.maintain()["stale"] == 1
            with override_settings(DOCE_WARM_POOL_SIZE=0):  # no new warm stack after it
                run_worker_until(
                    worker, lambda: not PoolEntry.objects.exists(), what="the stale stack gone"
                )
            assert not stack_status(refill.stack_name).exists
            assert not refill.root_dir.exists()
            assert Job.objects.filter(type=pool.DISCARD, state="succeeded").count() == 1
    finally:
        for project in projects:
            project.refresh_from_db()
            stack_down(project, delete=True)
            delete_files(project)
        for leftover in PoolEntry.objects.all():
            pool.remove_entry(leftover)
        model.stop()
