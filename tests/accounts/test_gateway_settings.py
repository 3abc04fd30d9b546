"""Settings' provider checks (Test connection, Fetch models), usage, and the operators'
admin for instance providers, usage (CSV) and budgets."""

from __future__ import annotations

import pytest

from accounts.models import Preferences, ProviderCredential, UsageRecord
from tests.scripted_model import ScriptedModelServer

pytestmark = pytest.mark.django_db

KEY = "PLANTEDsettingsKEY77aa"


@pytest.fixture
def model():
    server = ScriptedModelServer("127.0.0.1", 0, required_key=KEY).start()
    yield server
    server.stop()


def _provider(user, model, **fields):
    values = {
        "user": user,
        "kind": "openai-compatible",
        "provider_id": "local",
        "label": "Local",
        "base_url": model.base_url,
        "api_key": KEY,
        "model_names": ["x"],
    }
    values.update(fields)
    return ProviderCredential.objects.create(**values)


def test_test_connection_names_the_provider_and_what_it_said(alice_client, alice, model):
    provider = _provider(alice, model)
    page = alice_client.post(f"/settings/providers/{provider.pk}/test", follow=True)
    text = page.content.decode()
    assert f"Local ({model.base_url}) answered HTTP 200" in text
    assert model.keys_seen == [f"Bearer {KEY}"] and KEY not in text
    provider.api_key = "wrong"
    provider.save()
    text = alice_client.post(f"/settings/providers/{provider.pk}/test", follow=True).content
    assert b"answered HTTP 401 (the key was refused)" in text
    provider.base_url = "http://127.0.0.1:9/v1"
    provider.save()
    text = alice_client.post(f"/settings/providers/{provider.pk}/test", follow=True).content
    assert b"Local (http://127.0.0.1:9/v1) is unreachable" in text


def test_a_member_may_not_reach_private_addresses(bob_client, bob, model, settings):
    settings.DOCE_GATEWAY_ALLOW_PRIVATE = False
    provider = _provider(bob, model)
    text = bob_client.post(f"/settings/providers/{provider.pk}/test", follow=True).content
    assert b"loopback or private address" in text
    assert model.keys_seen == []
    settings.DOCE_GATEWAY_ALLOW_PRIVATE = True
    text = bob_client.post(f"/settings/providers/{provider.pk}/test", follow=True).content
    assert b"answered HTTP 200" in text


def test_fetch_models_fills_the_list(alice_client, alice, model):
    provider = _provider(alice, model)
    alice_client.post(f"/settings/providers/{provider.pk}/fetch-models")
    provider.refresh_from_db()
    assert provider.model_names == ["scripted"]


def test_another_users_provider_is_a_404(bob_client, alice, model):
    provider = _provider(alice, model)
    assert bob_client.post(f"/settings/providers/{provider.pk}/test").status_code == 404
    assert bob_client.post(f"/settings/providers/{provider.pk}/fetch-models").status_code == 404
    assert bob_client.get(f"/settings/providers/{provider.pk}/test").status_code == 405


def test_link_local_urls_are_refused_in_the_form(bob_client):
    response = bob_client.post(
        "/settings/providers/add",
        {
            "kind": "openai-compatible",
            "provider_id": "meta",
            "model_names": "m",
            "base_url": "http://169.254.169.254/v1",
        },
    )
    assert response.status_code == 400
    assert b"doce never calls this address" in response.content


def test_instance_providers_are_listed_without_their_key(bob_client, model):
    ProviderCredential.objects.create(
        user=None,
        kind="openai-compatible",
        provider_id="shared",
        label="Local Ollama",
        base_url=model.base_url,
        api_key=KEY,
        model_names=["llama"],
    )
    page = bob_client.get("/settings/").content.decode()
    assert "Shared by your administrator" in page and "Local Ollama" in page
    assert KEY not in page and KEY[-4:] not in page
    projects_page = bob_client.get("/").content.decode()
    assert "shared/llama" in projects_page  # offered as a model


def test_settings_show_usage_by_day_and_model(bob_client, bob, settings):
    settings.DOCE_GATEWAY_MONTHLY_TOKENS = 5000
    for tokens in (100, 200):
        UsageRecord.objects.create(
            user=bob,
            project_id="p",
            provider_id="local",
            model="m1",
            input_tokens=tokens,
            output_tokens=10,
            status=200,
        )
    page = bob_client.get("/settings/").content.decode()
    assert "320 tokens of your 5000-token monthly budget" in page
    assert "local/m1" in page and "<td>300</td>" in page and "<td>20</td>" in page


def test_admin_manages_instance_providers_usage_and_budgets(alice_client, bob, model):
    response = alice_client.post(
        "/admin/accounts/providercredential/add/",
        {
            "kind": "openai-compatible",
            "provider_id": "ollama",
            "label": "Local Ollama",
            "base_url": model.base_url,
            "model_names": '["llama3.1"]',
            "new_api_key": KEY,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    shared = ProviderCredential.objects.get(provider_id="ollama")
    assert shared.is_instance and shared.api_key == KEY
    change = alice_client.get(f"/admin/accounts/providercredential/{shared.pk}/change/")
    assert change.status_code == 200 and KEY not in change.content.decode()

    UsageRecord.objects.create(
        user=bob,
        project_id="p1",
        provider_id="ollama",
        model="=HYPERLINK(1)",
        input_tokens=5,
        output_tokens=6,
        status=200,
    )
    listing = alice_client.get("/admin/accounts/usagerecord/?provider_id=ollama")
    assert listing.status_code == 200 and b"p1" in listing.content
    export = alice_client.post(
        "/admin/accounts/usagerecord/",
        {
            "action": "export_csv",
            "_selected_action": list(UsageRecord.objects.values_list("pk", flat=True)),
        },
    )
    assert export["Content-Type"] == "text/csv"
    text = export.content.decode()
    assert text.splitlines()[0].startswith("created_at,user,project_id")
    assert "bob,p1,ollama" in text and "'=HYPERLINK(1)" in text

    response = alice_client.post(
        "/admin/accounts/preferences/add/", {"user": bob.pk, "monthly_token_budget": "1000"}
    )
    assert response.status_code == 302
    assert Preferences.objects.get(user=bob).monthly_token_budget == 1000
