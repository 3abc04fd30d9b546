"""Pure parts of the gateway: address policy, header rewriting per provider kind, usage read
from recorded OpenAI and Anthropic streams, budget arithmetic, the listener's endpoints."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime
from unittest import mock

import pytest

from accounts.providers import auth_headers, error_body, upstream_request_headers
from accounts.usage import BudgetState, month_start
from doce.addresses import AddressRefused, ResolutionFailed, check_address, resolve_allowed
from doce.redact import redact_text
from gateway.listener import daphne_endpoints
from gateway.metering import UsageMeter

# --- address policy ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "169.254.0.1",
        "fe80::1",
        "fd00:ec2::254",
        "100.100.100.200",
        "0.0.0.0",  # noqa: S104
        "::",
        "224.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",
    ],
)
def test_link_local_and_metadata_addresses_are_always_refused(address):
    with pytest.raises(AddressRefused, match="link-local, metadata or reserved"):
        check_address(address, allow_private=True)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "::1",
        "fd12::1",
        "::ffff:10.0.0.1",
        "100.64.0.1",
    ],
)
def test_loopback_and_private_need_permission(address):
    with pytest.raises(AddressRefused, match="loopback or private"):
        check_address(address, allow_private=False)
    check_address(address, allow_private=True)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address):
    check_address(address, allow_private=False)


def _infos(*addresses):
    return [
        (socket.AF_INET6 if ":" in a else socket.AF_INET, 1, 6, "", (a, 443)) for a in addresses
    ]


def test_names_are_checked_on_every_address_they_resolve_to():
    with mock.patch("socket.getaddrinfo", return_value=_infos("93.184.216.34")):
        resolved = resolve_allowed("api.example.com", 443, allow_private=False)
    assert (resolved.host, resolved.address, resolved.url_host) == (
        "api.example.com",
        "93.184.216.34",
        "93.184.216.34",
    )
    # A name resolving to a metadata address among public ones: refused (no rebinding).
    metadata = _infos("93.184.216.34", "169.254.169.254")
    with (
        mock.patch("socket.getaddrinfo", return_value=metadata),
        pytest.raises(AddressRefused, match=r"api\.example\.com resolves to 169\.254\.169\.254"),
    ):
        resolve_allowed("api.example.com", 443, allow_private=True)
    with mock.patch("socket.getaddrinfo", return_value=_infos("10.0.0.7")):
        with pytest.raises(AddressRefused, match=r"resolves to 10\.0\.0\.7"):
            resolve_allowed("internal.example", 80, allow_private=False)
        assert resolve_allowed("internal.example", 80, allow_private=True).address == "10.0.0.7"
    with mock.patch("socket.getaddrinfo", return_value=_infos("2001:db8::5")):
        assert resolve_allowed("v6.example", 80, allow_private=False).url_host == "[2001:db8::5]"
    with (
        mock.patch("socket.getaddrinfo", side_effect=socket.gaierror(-2, "Name unknown")),
        pytest.raises(ResolutionFailed, match="does not resolve"),
    ):
        resolve_allowed("nowhere.invalid", 80, allow_private=True)


def test_literal_addresses_skip_dns():
    with mock.patch("socket.getaddrinfo") as lookup:
        assert resolve_allowed("[::1]", 80, allow_private=True).url_host == "[::1]"
        with pytest.raises(AddressRefused):
            resolve_allowed("169.254.169.254", 80, allow_private=True)
    lookup.assert_not_called()


# --- headers and errors per provider kind -------------------------------------------------


def test_auth_headers_follow_each_providers_convention():
    assert auth_headers("openai", "sk-1") == {"authorization": "Bearer sk-1"}
    assert auth_headers("openrouter", "sk-or-1") == {"authorization": "Bearer sk-or-1"}
    assert auth_headers("openai-compatible", "") == {}
    assert auth_headers("anthropic", "sk-ant-1") == {
        "anthropic-version": "2023-06-01",
        "x-api-key": "sk-ant-1",
    }


def test_the_agents_credentials_never_go_upstream():
    incoming = [
        ("Authorization", "Bearer doce_gw_token"),
        ("x-api-key", "doce_gw_token"),
        ("Cookie", "sessionid=x"),
        ("Host", "host.docker.internal:8001"),
        ("Content-Length", "12"),
        ("Accept-Encoding", "gzip"),
        ("Content-Type", "application/json"),
        ("anthropic-version", "2024-01-01"),
        ("anthropic-beta", "tools"),
    ]
    out = upstream_request_headers("anthropic", "sk-ant-real", incoming)
    names = [name.lower() for name, _ in out]
    assert "doce_gw_token" not in str(out) and "sessionid" not in str(out)
    assert ("x-api-key", "sk-ant-real") in out
    assert ("anthropic-version", "2024-01-01") in out  # the SDK's own choice is kept
    assert names.count("anthropic-version") == 1
    assert ("anthropic-beta", "tools") in out and ("accept-encoding", "identity") in out
    assert "host" not in names and "content-length" not in names
    openai = upstream_request_headers("openai-compatible", "k", incoming)
    assert ("authorization", "Bearer k") in openai
    assert [v for n, v in openai if n.lower() == "authorization"] == ["Bearer k"]


def test_errors_are_written_in_the_providers_own_format():
    openai = json.loads(error_body("openai-compatible", 424, "down", "provider_unreachable"))
    assert openai == {
        "error": {
            "message": "down",
            "type": "provider_unreachable",
            "code": "provider_unreachable",
            "param": None,
        }
    }
    anthropic = json.loads(error_body("anthropic", 401, "no", "invalid_gateway_token"))
    assert anthropic == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "no"},
    }


def test_the_redactor_knows_gateway_tokens():
    token = "doce_gw_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v"
    assert token not in redact_text(f"agent sent Bearer {token} and apiKey={token}")
    assert token not in redact_text(json.dumps({"options": {"apiKey": token}}))


# --- usage from recorded streams ------------------------------------------------------------

OPENAI_STREAM = (
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":'
    b'{"role":"assistant","content":""},"finish_reason":null}],"usage":null}\n\n'
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":'
    b'{"content":"Hi"},"finish_reason":null}],"usage":null}\n\n'
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},'
    b'"finish_reason":"stop"}],"usage":null}\n\n'
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":'
    b'{"prompt_tokens":1234,"completion_tokens":56,"total_tokens":1290}}\n\n'
    b"data: [DONE]\n\n"
)
ANTHROPIC_STREAM = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":'
    b'"assistant","content":[],"model":"claude-sonnet-4","usage":{"input_tokens":472,'
    b'"cache_creation_input_tokens":10,"cache_read_input_tokens":8,"output_tokens":1}}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}\n\n'
    b"event: message_delta\n"
    b'data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":'
    b'{"output_tokens":15}}\n\n'
    b"event: message_delta\n"
    b'data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":'
    b'{"output_tokens":89}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)


@pytest.mark.parametrize("size", [1, 7, 64, 100000])
def test_usage_is_read_from_an_openai_stream_in_any_pieces(size):
    meter = UsageMeter(streaming=True)
    for i in range(0, len(OPENAI_STREAM), size):
        meter.feed(OPENAI_STREAM[i : i + size])
    assert meter.usage() == (1234, 56)


@pytest.mark.parametrize("size", [1, 13, 100000])
def test_usage_is_read_from_an_anthropic_stream(size):
    meter = UsageMeter(streaming=True)
    for i in range(0, len(ANTHROPIC_STREAM), size):
        meter.feed(ANTHROPIC_STREAM[i : i + size])
    assert meter.usage() == (490, 89)  # cache reads and writes count as input


def test_a_stream_without_usage_reports_none():
    meter = UsageMeter(streaming=True)
    meter.feed(OPENAI_STREAM.replace(b'"usage":{', b'"other":{'))
    assert meter.usage() == (None, None)


def test_usage_of_plain_json_answers():
    openai = UsageMeter(streaming=False)
    openai.feed(b'{"choices":[],"usage":{"prompt_tokens":5,')
    openai.feed(b'"completion_tokens":7}}')
    assert openai.usage() == (5, 7)
    anthropic = UsageMeter(streaming=False)
    anthropic.feed(b'{"content":[],"usage":{"input_tokens":3,"output_tokens":4}}')
    assert anthropic.usage() == (3, 4)
    broken = UsageMeter(streaming=False)
    broken.feed(b'{"usage": ')
    assert broken.usage() == (None, None)


# --- budgets ---------------------------------------------------------------------------------


def test_budget_arithmetic():
    assert BudgetState(budget=0, used=10**9).left is None
    assert not BudgetState(budget=0, used=10**9).exhausted
    assert BudgetState(budget=1000, used=400).left == 600
    assert not BudgetState(budget=1000, used=999).exhausted
    assert BudgetState(budget=1000, used=1000).exhausted
    assert BudgetState(budget=1000, used=1500).left == 0
    now = datetime(2026, 3, 31, 23, 59, tzinfo=UTC)
    assert month_start(now) == datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.django_db
def test_the_monthly_budget_counts_this_months_tokens_only(bob, alice, settings):
    from accounts.models import Preferences, UsageRecord
    from accounts.usage import budget_state

    settings.DOCE_GATEWAY_MONTHLY_TOKENS = 100
    old = UsageRecord.objects.create(
        user=bob, project_id="p", provider_id="x", input_tokens=500, output_tokens=0, status=200
    )
    UsageRecord.objects.filter(pk=old.pk).update(created_at=datetime(2020, 1, 1, tzinfo=UTC))
    UsageRecord.objects.create(
        user=bob, project_id="p", provider_id="x", input_tokens=30, output_tokens=None, status=200
    )
    UsageRecord.objects.create(
        user=alice, project_id="q", provider_id="x", input_tokens=999, output_tokens=1, status=200
    )
    assert budget_state(bob) == BudgetState(budget=100, used=30)
    Preferences.objects.create(user=bob, monthly_token_budget=20)
    assert budget_state(bob).exhausted
    Preferences.objects.filter(user=bob).update(monthly_token_budget=0)
    assert budget_state(bob) == BudgetState(budget=0, used=0)


def test_listener_endpoints_escape_ipv6():
    assert daphne_endpoints(["172.17.0.1", "::1"], 8001) == [
        "tcp:port=8001:interface=172.17.0.1",
        "tcp:port=8001:interface=\\:\\:1",
    ]
