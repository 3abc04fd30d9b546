"""The agent's OpenCode configuration built from its owner's provider credentials."""

import pytest

from accounts.models import ProviderCredential
from projects.agent_config import container_reachable_url, opencode_config, opencode_provider_config


@pytest.mark.django_db
def test_it_builds_the_agent_provider_block_for_its_owner_only(bob, charlie):
    ProviderCredential.objects.create(
        user=bob,
        kind="openai-compatible",
        provider_id="ollama",
        base_url="http://127.0.0.1:11434/v1",
        model_names=["llama3.1:8b"],
    )
    ProviderCredential.objects.create(
        user=charlie, kind="openai", provider_id="openai", api_key="sk-charlie-key"
    )
    block = opencode_provider_config(bob)
    assert block == {
        "ollama": {
            "npm": "@ai-sdk/openai-compatible",
            "name": "OpenAI-compatible (Ollama, LM Studio, vLLM, …)",
            "options": {"baseURL": "http://host.docker.internal:11434/v1", "apiKey": "not-needed"},
            "models": {"llama3.1:8b": {"name": "llama3.1:8b"}},
        }
    }
    assert "sk-charlie-key" not in str(block)


def test_it_points_loopback_urls_at_the_docker_host():
    assert (
        container_reachable_url("http://localhost:1234/v1") == "http://host.docker.internal:1234/v1"
    )
    assert container_reachable_url("http://[::1]:8080/v1") == "http://host.docker.internal:8080/v1"
    assert container_reachable_url("https://api.example.com/v1") == "https://api.example.com/v1"


def test_it_writes_the_model_and_provider_block_into_the_agent_config():
    provider = {"ollama": {"options": {"apiKey": "not-needed"}}}
    assert opencode_config("ollama/llama3.1:8b", provider) == {
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "model": "ollama/llama3.1:8b",
        "provider": provider,
    }
    assert "model" not in opencode_config("", None)
