import json
import logging

import pytest
import structlog


@pytest.mark.django_db
def test_it_logs_each_request_with_its_request_id(client, alice, json_logs):
    json_logs.start()
    response = client.get("/login")
    request_id = response["X-Request-ID"]
    lines = [line for line in json_logs() if line.get("event") == "request"]
    assert lines and lines[-1]["request_id"] == request_id
    assert lines[-1]["path"] == "/login" and lines[-1]["status"] == 200


@pytest.mark.django_db
def test_it_binds_the_signed_in_user(alice_client, alice, json_logs):
    json_logs.start()
    alice_client.get("/")
    line = next(line for line in json_logs() if line.get("event") == "request")
    assert line["user_id"] == alice.pk


def test_it_never_logs_secrets(json_logs):
    json_logs.start()
    structlog.get_logger("t").info(
        "calling provider", api_key="sk-abc123456789", url="http://u:pw12345@h/"
    )
    logging.getLogger("django.request").error("failed with Bearer abcdefgh12345678")
    text = json.dumps(json_logs())
    for secret in ("sk-abc123456789", "pw12345", "abcdefgh12345678"):
        assert secret not in text
