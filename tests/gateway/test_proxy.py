"""The model gateway's request path, in-process against the scripted model on 127.0.0.1.

Each test drives `doce.asgi.application` as daphne would on the gateway listener; the
upstream is a real HTTP server (the scripted model, listening on loopback only, requiring
the real key).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from accounts.models import Preferences, ProviderCredential, UsageRecord
from projects.agent_config import issue_gateway_token
from projects.models import Project
from tests.gateway.asgi import call
from tests.scripted_model import ScriptedModelServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

REAL_KEY = "PLANTEDgatewayKEY4d2a9e"
CHAT = {
    "model": "scripted",
    "stream": True,
    "messages": [{"role": "user", "content": "[script:text] Hello there"}],
    "tools": [{"type": "function", "function": {"name": "noop", "parameters": {}}}],
}


@pytest.fixture
def model():
    server = ScriptedModelServer("127.0.0.1", 0, required_key=REAL_KEY).start()
    yield server
    server.stop()


@pytest.fixture
def setup(model, bob, settings):
    settings.DOCE_GATEWAY_ALLOW_PRIVATE = True
    credential = ProviderCredential.objects.create(
        user=bob,
        kind="openai-compatible",
        provider_id="local",
        label="Local model",
        base_url=model.base_url,
        api_key=REAL_KEY,
        model_names=["scripted"],
    )
    project = Project.objects.create(owner=bob, name="x", prompt="x")
    token = issue_gateway_token(project)
    return project, credential, token


async def test_a_stream_goes_through_with_the_real_key_and_is_metered(model, setup):
    project, _, token = setup
    model.scripts["paced"] = [
        [{"type": "text", "text": "abcdefghij" * 2, "chunk": 4, "delay": 0.05}]
    ]
    body = {**CHAT, "messages": [{"role": "user", "content": "[script:paced] Hello"}]}
    answer = await call("/gw/local/v1/chat/completions", token=token, body=body)
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert len(answer.chunks) >= 5  # relayed as it came, not as one buffered body
    assert answer.body.rstrip().endswith(b"data: [DONE]")
    assert model.keys_seen == [f"Bearer {REAL_KEY}"]  # the real key, not the token
    assert model.requests[0]["stream_options"] == {"include_usage": True}
    row = await UsageRecord.objects.aget()
    reported = model.usage_reported[0]
    assert (row.input_tokens, row.output_tokens) == (
        reported["prompt_tokens"],
        reported["completion_tokens"],
    )
    assert row.status == 200 and row.project_id == project.id and row.model == "scripted"
    assert row.provider_id == "local" and row.ttfb_ms is not None
    assert row.total_ms >= row.ttfb_ms


async def test_the_public_listener_never_serves_the_gateway(setup, settings):
    _, _, token = setup
    public = await call("/gw/local/v1/chat/completions", token=token, body=CHAT, port=8000)
    assert public.status == 404
    # ...and the gateway listener serves nothing but the gateway.
    page = await call("/settings/", method="GET")
    assert page.status == 404
    malformed = await call("/gw/../etc/passwd", token=token, body=CHAT)
    assert malformed.status == 404 and malformed.json()["error"]["type"] == "not_found"


async def test_a_bad_or_revoked_token_is_refused_in_the_providers_format(setup, model):
    project, _, token = setup
    for bad in (None, "", "doce_gw_nope", "sk-something"):
        answer = await call("/gw/local/v1/chat/completions", token=bad, body=CHAT)
        assert answer.status == 401
        assert "not valid" in answer.json()["error"]["message"]
    project.status = Project.Status.DELETING
    await project.asave()
    answer = await call("/gw/local/v1/chat/completions", token=token, body=CHAT)
    assert answer.status == 401
    assert model.requests == []


async def test_an_unknown_provider_names_itself(setup):
    _, _, token = setup
    answer = await call("/gw/nosuch/v1/chat/completions", token=token, body=CHAT)
    assert answer.status == 404
    assert "nosuch" in answer.json()["error"]["message"]


async def test_a_dead_upstream_is_named_fast(setup):
    _, credential, token = setup
    credential.base_url = "http://127.0.0.1:9/v1"  # nothing listens on the discard port
    await credential.asave()
    started = time.monotonic()
    answer = await call("/gw/local/v1/chat/completions", token=token, body=CHAT)
    assert time.monotonic() - started < 5
    assert answer.status == 424  # not retried by the agent's SDK
    error = answer.json()["error"]
    assert error["code"] == "provider_unreachable"
    assert "Local model (http://127.0.0.1:9/v1)" in error["message"]
    assert "Settings" in error["message"]
    row = await UsageRecord.objects.aget()
    assert row.status == 424 and row.error == "provider_unreachable"


async def test_the_address_policy_is_applied_on_every_request(setup, settings):
    _, credential, token = setup
    settings.DOCE_GATEWAY_ALLOW_PRIVATE = False  # bob is no administrator
    answer = await call("/gw/local/v1/chat/completions", token=token, body=CHAT)
    assert answer.status == 424 and "loopback or private" in answer.json()["error"]["message"]
    credential.base_url = "http://169.254.169.254/latest"
    await credential.asave()
    settings.DOCE_GATEWAY_ALLOW_PRIVATE = True
    answer = await call("/gw/local/v1/chat/completions", token=token, body=CHAT)
    assert answer.status == 424 and "metadata" in answer.json()["error"]["message"]
    credential.base_url = "http://localhost:9/v1"  # a name: resolved, then checked
    await credential.asave()
    settings.DOCE_GATEWAY_ALLOW_PRIVATE = False
    answer = await call("/gw/local/v1/chat/completions", token=token, body=CHAT)
    message = answer.json()["error"]["message"]
    assert answer.status == 424 and "localhost resolves to" in message and "loopback" in message


async def test_an_instance_provider_may_use_loopback(model, setup, settings, bob):
    _, credential, token = setup
    settings.DOCE_GATEWAY_ALLOW_PRIVATE = False
    await credential.adelete()
    await ProviderCredential.objects.acreate(
        user=None,
        kind="openai-compatible",
        provider_id="local",
        base_url=model.base_url,
        api_key=REAL_KEY,
        model_names=["scripted"],
    )
    answer = await call("/gw/local/v1/chat/completions", token=token, body=CHAT)
    assert answer.status == 200
    row = await UsageRecord.objects.aget()
    assert row.instance_provider


async def test_a_spent_budget_refuses_before_anything_is_sent(model, setup, bob, settings):
    project, _, token = setup
    settings.DOCE_GATEWAY_MONTHLY_TOKENS = 100
    await UsageRecord.objects.acreate(
        user=bob,
        project_id=project.id,
        provider_id="local",
        input_tokens=60,
        output_tokens=40,
        status=200,
    )
    answer = await call("/gw/local/v1/chat/completions", token=token, body=CHAT)
    assert answer.status == 402
    assert "budget" in answer.json()["error"]["message"]
    assert model.requests == []
    # A per-user budget (admin) overrides the default.
    await Preferences.objects.aupdate_or_create(user=bob, defaults={"monthly_token_budget": 0})
    answer = await call("/gw/local/v1/chat/completions", token=token, body=CHAT)
    assert answer.status == 200


async def test_a_client_disconnect_cancels_the_upstream_stream(model, setup):
    _, _, token = setup
    model.scripts["long"] = [
        [{"type": "text", "text": "x" * 400, "chunk": 4, "delay": 0.05}],
    ]
    body = {**CHAT, "messages": [{"role": "user", "content": "[script:long] go"}]}
    started = time.monotonic()
    answer = await call(
        "/gw/local/v1/chat/completions", token=token, body=body, disconnect_after_chunks=3
    )
    assert time.monotonic() - started < 3  # the full stream would take 5 s
    assert answer.status == 200
    deadline = time.monotonic() + 3
    while model.aborted == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert model.aborted == 1  # the upstream request was closed, not read to the end
    row = await UsageRecord.objects.aget()
    assert row.status == 499 and row.error == "client disconnected"


async def test_an_upstream_error_passes_through_untouched(model, setup):
    _, credential, token = setup
    credential.api_key = "wrong-key"
    await credential.asave()
    answer = await call("/gw/local/v1/chat/completions", token=token, body=CHAT)
    assert answer.status == 401
    assert answer.json()["error"]["type"] == "invalid_api_key"
    assert "wrong-key" not in answer.body.decode()
