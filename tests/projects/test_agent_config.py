"""The agent's OpenCode configuration: gateway URLs and the project's gateway token only."""

import pytest

from accounts.models import ProviderCredential
from projects.agent_config import (
    gateway_token_digest,
    opencode_config,
    opencode_provider_config,
    project_for_gateway_token,
    providers_fingerprint,
    revoke_gateway_token,
)
from projects.models import Project


@pytest.mark.django_db
def test_it_lists_the_owners_providers_through_the_gateway(bob, charlie, settings):
    settings.DOCE_GATEWAY_PORT = 8123
    ProviderCredential.objects.create(
        user=bob,
        kind="openai-compatible",
        provider_id="ollama",
        base_url="http://127.0.0.1:11434/v1",
        api_key="local-secret-key",
        model_names=["llama3.1:8b"],
    )
    ProviderCredential.objects.create(
        user=charlie, kind="openai", provider_id="openai", api_key="sk-charlie-key"
    )
    # An instance provider (no user) is listed for everyone; a user's own one of the same
    # id wins over it.
    ProviderCredential.objects.create(
        user=None,
        kind="anthropic",
        provider_id="anthropic",
        api_key="sk-ant-instance",
        model_names=["claude-sonnet-4-20250514"],
    )
    ProviderCredential.objects.create(
        user=None,
        kind="openai-compatible",
        provider_id="ollama",
        base_url="http://10.0.0.5:11434/v1",
        model_names=["instance-model"],
    )
    project = Project.objects.create(owner=bob, name="x", prompt="x")
    block = opencode_provider_config(project)
    token = block["ollama"]["options"]["apiKey"]
    assert token.startswith("doce_gw_") and len(token) > 40
    assert block == {
        "anthropic": {
            "options": {
                "baseURL": "http://host.docker.internal:8123/gw/anthropic/v1",
                "apiKey": token,
            },
            "models": {"claude-sonnet-4-20250514": {"name": "claude-sonnet-4-20250514"}},
        },
        "ollama": {
            "npm": "@ai-sdk/openai-compatible",
            "name": "OpenAI-compatible (Ollama, LM Studio, vLLM, …)",
            "options": {
                "baseURL": "http://host.docker.internal:8123/gw/ollama/v1",
                "apiKey": token,
                "includeUsage": True,
            },
            "models": {"llama3.1:8b": {"name": "llama3.1:8b"}},
        },
    }
    text = str(block)
    for secret in ("local-secret-key", "sk-charlie-key", "sk-ant-instance", "11434", "10.0.0.5"):
        assert secret not in text
    project.refresh_from_db()
    assert project.gateway_token_digest == gateway_token_digest(token)
    assert token not in project.gateway_token_digest


@pytest.mark.django_db
def test_a_new_rendering_rotates_the_token_and_delete_revokes_it(bob):
    project = Project.objects.create(owner=bob, name="x", prompt="x")
    first = opencode_provider_config(project)
    assert first == {}  # no providers: nothing listed, but a token is issued all the same
    project.refresh_from_db()
    old_digest = project.gateway_token_digest
    from projects.agent_config import issue_gateway_token

    token = issue_gateway_token(project)
    assert project_for_gateway_token(token) == project
    assert Project.objects.get(pk=project.pk).gateway_token_digest != old_digest
    newer = issue_gateway_token(project)
    assert project_for_gateway_token(token) is None  # rotated
    assert project_for_gateway_token(newer) == project
    project.status = Project.Status.DELETING
    project.save()
    assert project_for_gateway_token(newer) is None  # being deleted
    project.status = Project.Status.RUNNING
    project.save()
    revoke_gateway_token(project)
    assert project_for_gateway_token(newer) is None
    assert project_for_gateway_token("") is None
    assert project_for_gateway_token("doce_gw_" + "x" * 200) is None


def test_it_writes_the_model_and_provider_block_into_the_agent_config():
    provider = {"ollama": {"options": {"apiKey": "doce_gw_x"}}}
    assert opencode_config("ollama/llama3.1:8b", provider) == {
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "model": "ollama/llama3.1:8b",
        "provider": provider,
    }
    assert "model" not in opencode_config("", None)


@pytest.mark.django_db
def test_it_lets_images_through_to_a_compatible_endpoint_marked_as_taking_them(bob):
    vision = ProviderCredential.objects.create(
        user=bob,
        kind="openai-compatible",
        provider_id="vision",
        base_url="http://127.0.0.1:11434/v1",
        model_names=["llava"],
    )
    project = Project.objects.create(owner=bob, name="x", prompt="x")
    before = providers_fingerprint(bob)
    assert opencode_provider_config(project)["vision"]["models"] == {"llava": {"name": "llava"}}
    vision.accepts_images = True
    vision.save()
    assert opencode_provider_config(project)["vision"]["models"] == {
        "llava": {
            "name": "llava",
            "attachment": True,
            "modalities": {"input": ["text", "image"], "output": ["text"]},
        }
    }
    assert providers_fingerprint(bob) != before  # a running agent gets the new config
