"""The client's requests and error handling, with a fake transport (integration tests use
the real server)."""

import base64
import json

import httpx
import pytest

from doce.opencode.client import AsyncOpencodeClient, OpencodeClient, client_for, close_clients
from doce.opencode.errors import OpencodeError


def fake(handler) -> OpencodeClient:
    return OpencodeClient(
        "http://agent:1234", "s3cret-pass", transport=httpx.MockTransport(handler)
    )


def test_it_sends_basic_auth_and_quotes_ids():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "ses_1", "title": "t"})

    fake(handler).get_session("../../config")
    request = seen[0]
    assert request.url.raw_path == b"/session/..%2F..%2Fconfig"
    expected = base64.b64encode(b"opencode:s3cret-pass").decode()
    assert request.headers["authorization"] == f"Basic {expected}"


def test_it_sends_prompts_with_the_model_split():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(204)

    assert fake(handler).prompt_async("ses_1", "hi", model="openrouter/google/gemini") is None
    assert seen[0] == {
        "parts": [{"type": "text", "text": "hi"}],
        "model": {"providerID": "openrouter", "modelID": "google/gemini"},
    }
    with pytest.raises(ValueError):
        fake(handler).prompt_async("ses_1", "hi", model="no-slash")


def test_it_raises_classified_errors_without_the_password():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"data": {"message": "boom with s3cret-pass inside"}})

    with pytest.raises(OpencodeError) as caught:
        fake(handler).list_sessions()
    assert caught.value.diagnostic.category == "unknown"
    assert caught.value.retryable and not caught.value.permanent
    assert "s3cret-pass" not in str(caught.value)
    assert "boom" in caught.value.diagnostic.message


def test_it_reports_an_unexpected_answer_shape():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"no": "id"})

    with pytest.raises(OpencodeError) as caught:
        fake(handler).create_session()
    assert "unexpected shape" in caught.value.diagnostic.message


def test_it_reports_transport_failures_as_unreachable():
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(OpencodeError) as caught:
        fake(handler).health()
    assert caught.value.diagnostic.category == "runtime_unreachable"


async def test_the_async_client_speaks_the_same_endpoints():
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["limit"] == "5"
        return httpx.Response(200, json=[])

    client = AsyncOpencodeClient("http://agent:1", "pw", transport=httpx.MockTransport(handler))
    assert await client.messages("ses_1", limit=5) == []
    await client.aclose()


def test_it_caches_clients_per_address_and_closes_them():
    first = client_for("http://127.0.0.1:9", "pw")
    assert client_for("http://127.0.0.1:9/", "pw") is first
    assert close_clients("http://127.0.0.1:9") == 1
    assert client_for("http://127.0.0.1:9", "pw") is not first
    close_clients("http://127.0.0.1:9")
