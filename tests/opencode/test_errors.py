import httpx
import pytest

from doce.opencode.errors import (
    diagnostic_for_agent_error,
    diagnostic_for_status,
    diagnostic_for_transport,
)


@pytest.mark.parametrize(
    ("status", "category", "retryable"),
    [
        (400, "provider_model", False),
        (401, "auth", False),
        (403, "auth", False),
        (404, "unknown", False),
        (408, "timeout", True),
        (429, "provider_model", True),
        (500, "unknown", True),
        (502, "runtime_unreachable", True),
        (503, "runtime_unreachable", True),
        (504, "timeout", True),
    ],
)
def test_it_classifies_http_statuses(status, category, retryable):
    diagnostic = diagnostic_for_status(status, "")
    assert (diagnostic.category, diagnostic.retryable, diagnostic.status_code) == (
        category,
        retryable,
        status,
    )
    assert diagnostic.title and diagnostic.message and diagnostic.remediation


def test_it_classifies_transport_failures():
    assert diagnostic_for_transport(httpx.ConnectError("refused")).category == (
        "runtime_unreachable"
    )
    timeout = diagnostic_for_transport(httpx.ReadTimeout("slow"))
    assert timeout.category == "timeout" and timeout.retryable


@pytest.mark.parametrize(
    ("error", "category"),
    [
        ({"name": "ProviderAuthError", "data": {"message": "bad key"}}, "auth"),
        ({"name": "APIError", "data": {"message": "nope", "statusCode": 401}}, "auth"),
        (
            {"name": "APIError", "data": {"message": "Rate limit", "statusCode": 429}},
            "provider_model",
        ),
        ({"name": "MessageOutputLengthError", "data": {}}, "provider_model"),
        (
            {"name": "UnknownError", "data": {"message": "connection refused"}},
            "runtime_unreachable",
        ),
        ({"name": "UnknownError", "data": {"message": "request timed out"}}, "timeout"),
        ({"name": "UnknownError", "data": {"message": "something odd"}}, "unknown"),
        (None, "unknown"),
    ],
)
def test_it_classifies_agent_errors(error, category):
    assert diagnostic_for_agent_error(error).category == category


def test_it_redacts_secrets_from_every_message():
    secret = "sk-or-v1-abcdefghijklmnopqrstuvwxyz"
    diagnostic = diagnostic_for_agent_error(
        {"name": "APIError", "data": {"message": f"Invalid API key {secret} for user"}}
    )
    assert secret not in diagnostic.model_dump_json()
    status = diagnostic_for_status(500, "agent password hunter22secret leaked", ("hunter22secret",))
    assert "hunter22secret" not in status.message


def test_it_cuts_long_details():
    diagnostic = diagnostic_for_agent_error(
        {"name": "UnknownError", "data": {"message": "x" * 5000}}
    )
    assert len(diagnostic.message) <= 500
