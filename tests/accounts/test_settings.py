import pytest

from accounts.models import ApiToken, Preferences, ProviderCredential
from accounts.services import (
    available_models,
    create_api_token,
    default_model,
    model_takes_images,
    user_for_api_token,
)

OLLAMA = {
    "kind": "openai-compatible",
    "provider_id": "ollama",
    "base_url": "http://localhost:11434/v1",
    "model_names": "llama3.1:8b, qwen2.5-coder:7b",
}


@pytest.mark.django_db
def test_it_adds_a_hosted_provider_with_default_models_and_masks_the_key(bob_client, bob):
    key = "sk-or-v1-planted-secret-0123456789"
    response = bob_client.post("/settings/providers/add", {"kind": "openrouter", "api_key": key})
    assert response.status_code == 302
    credential = ProviderCredential.objects.get(user=bob)
    assert credential.provider_id == "openrouter"
    assert credential.api_key == key
    assert "openrouter/google/gemini-2.5-flash" in available_models(bob)
    page = bob_client.get("/settings/").content.decode()
    assert key not in page and "••••6789" in page


@pytest.mark.django_db
def test_it_stores_provider_keys_encrypted(bob):
    ProviderCredential.objects.create(user=bob, kind="openai", provider_id="openai", api_key="sk-x")
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM accounts_providercredential")
        stored = cursor.fetchone()[0]
    assert stored and "sk-x" not in stored


@pytest.mark.django_db
def test_it_adds_an_openai_compatible_endpoint(bob_client, bob):
    response = bob_client.post("/settings/providers/add", OLLAMA)
    assert response.status_code == 302
    assert available_models(bob) == ["ollama/llama3.1:8b", "ollama/qwen2.5-coder:7b"]
    assert default_model(bob) == "ollama/llama3.1:8b"


@pytest.mark.django_db
def test_only_a_compatible_endpoint_marked_so_takes_images(bob_client, bob):
    bob_client.post("/settings/providers/add", OLLAMA)
    bob_client.post(
        "/settings/providers/add",
        {**OLLAMA, "provider_id": "vision", "model_names": "llava", "accepts_images": "on"},
    )
    bob_client.post(
        "/settings/providers/add",
        {"kind": "openai", "api_key": "sk-planted-0123456789", "accepts_images": "on"},
    )
    takes = {c.provider_id: (c.accepts_images, c.takes_images) for c in bob.providers.all()}
    assert takes == {"ollama": (False, False), "vision": (True, True), "openai": (False, True)}
    assert model_takes_images(bob, "vision/llava") is True
    assert model_takes_images(bob, "ollama/llama3.1:8b") is False
    assert model_takes_images(bob, "nobody/llava") is False
    page = bob_client.get("/settings/").content.decode()
    assert page.count("data-takes-images") == 2  # vision and openai


@pytest.mark.parametrize(
    ("data", "field_error"),
    [
        ({"kind": "anthropic"}, b"This provider needs an API key."),
        ({**OLLAMA, "base_url": ""}, b"needs its base URL"),
        ({**OLLAMA, "base_url": "ftp://x/v1"}, b"Enter a valid URL."),
        ({**OLLAMA, "provider_id": ""}, b"short id"),
        ({**OLLAMA, "provider_id": "openai"}, b"built-in provider"),
        ({**OLLAMA, "model_names": "has space"}, b"Not a model name"),
        ({**OLLAMA, "model_names": ""}, b"at least one model"),
        ({"kind": "gemini-pro-max"}, b"Select a valid choice"),
    ],
)
@pytest.mark.django_db
def test_it_rejects_bad_provider_input_with_a_clear_message(bob_client, bob, data, field_error):
    response = bob_client.post("/settings/providers/add", data)
    assert response.status_code == 400
    assert field_error in response.content
    assert not ProviderCredential.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_duplicate_provider_id(bob_client):
    bob_client.post("/settings/providers/add", OLLAMA)
    response = bob_client.post("/settings/providers/add", OLLAMA)
    assert response.status_code == 400
    assert b"already have a provider called ollama" in response.content


@pytest.mark.django_db
def test_it_sets_the_default_model_only_to_an_available_one(bob_client, bob):
    bob_client.post("/settings/providers/add", OLLAMA)
    response = bob_client.post("/settings/default-model", {"default_model": "openai/gpt-4.1"})
    assert response.status_code == 400
    response = bob_client.post(
        "/settings/default-model", {"default_model": "ollama/qwen2.5-coder:7b"}
    )
    assert response.status_code == 302
    assert Preferences.for_user(bob).default_model == "ollama/qwen2.5-coder:7b"
    assert default_model(bob) == "ollama/qwen2.5-coder:7b"


@pytest.mark.django_db
def test_it_never_lets_one_user_remove_anothers_provider(bob, charlie, client):
    credential = ProviderCredential.objects.create(
        user=bob, kind="openai", provider_id="openai", api_key="sk-bob"
    )
    client.force_login(charlie)
    response = client.post(f"/settings/providers/{credential.pk}/delete")
    assert response.status_code == 404
    assert ProviderCredential.objects.filter(pk=credential.pk).exists()


@pytest.mark.django_db
def test_it_shows_a_new_api_token_once_and_stores_only_its_digest(bob_client, bob):
    response = bob_client.post("/settings/tokens/add", {"name": "deploy"})
    assert response.status_code == 200
    body = response.content.decode()
    token = ApiToken.objects.get(user=bob)
    start = body.index("doce_")
    plaintext = body[start : body.index("<", start)]
    assert plaintext.startswith(token.prefix)
    assert token.digest != plaintext and plaintext not in token.digest
    assert user_for_api_token(plaintext) == bob
    assert plaintext not in bob_client.get("/settings/").content.decode()


@pytest.mark.django_db
def test_it_refuses_revoked_and_unknown_tokens(bob, bob_client):
    token, plaintext = create_api_token(bob, "ci")
    assert user_for_api_token(plaintext + "x") is None
    assert user_for_api_token("not-a-token") is None
    assert bob_client.post(f"/settings/tokens/{token.pk}/revoke").status_code == 302
    assert user_for_api_token(plaintext) is None
    assert bob_client.post(f"/settings/tokens/{token.pk}/revoke").status_code == 404


@pytest.mark.django_db
def test_it_changes_the_password_and_keeps_the_session(bob_client, bob):
    response = bob_client.post(
        "/settings/password",
        {
            "old_password": "bob-pass-1",
            "new_password1": "new-pass-777x",
            "new_password2": "new-pass-777x",
        },
    )
    assert response.status_code == 302
    bob.refresh_from_db()
    assert bob.check_password("new-pass-777x")
    assert bob_client.get("/settings/").status_code == 200


@pytest.mark.django_db
def test_it_rejects_a_wrong_old_password(bob_client, bob):
    response = bob_client.post(
        "/settings/password",
        {
            "old_password": "nope",
            "new_password1": "new-pass-777x",
            "new_password2": "new-pass-777x",
        },
    )
    assert response.status_code == 400
    bob.refresh_from_db()
    assert bob.check_password("bob-pass-1")


@pytest.mark.parametrize(
    "url",
    [
        "http://bob:s3cret-pass@llm.example.org:8000/v1",
        "https://only-a-token@llm.example.org/v1",
        "http://:s3cret-pass@llm.example.org/v1",
    ],
)
@pytest.mark.django_db
def test_it_refuses_credentials_in_a_provider_url(bob_client, bob, url):
    response = bob_client.post("/settings/providers/add", {**OLLAMA, "base_url": url})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Remove the user name and password from this URL" in page
    assert "needs its base URL" not in page  # one reason, the right one
    assert "s3cret-pass" not in page and "only-a-token" not in page  # not echoed back
    assert 'value="http' in page and "llm.example.org" in page  # the rest of the URL is
    assert not ProviderCredential.objects.exists()


@pytest.mark.django_db
def test_it_refuses_credentials_in_a_provider_url_in_model_validation(bob):
    from django.core.exceptions import ValidationError

    credential = ProviderCredential(
        user=bob,
        kind="openai-compatible",
        provider_id="vllm",
        base_url="http://bob:s3cret-pass@llm.example.org/v1",
        model_names=["m"],
    )
    with pytest.raises(ValidationError) as raised:
        credential.full_clean()
    assert raised.value.error_dict["base_url"][0].code == "url_credentials"
    credential.base_url = "http://llm.example.org/v1?user=@team"  # "@" outside the host part
    credential.full_clean()


@pytest.mark.django_db(transaction=True)
def test_it_moves_credentials_out_of_stored_provider_urls():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("accounts", "0002_apitoken_preferences_providercredential")]
    after = [("accounts", "0003_provider_url_without_credentials")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        bob = old.get_model("auth", "User").objects.create(username="bob")
        rows = old.get_model("accounts", "ProviderCredential").objects
        common = {"user": bob, "kind": "openai-compatible", "model_names": ["m"]}
        rows.create(**common, provider_id="vllm", base_url="http://bob:s3cret%40x@llm.test:8000/v1")
        rows.create(
            **common, provider_id="lite", base_url="https://u:p@lite.test/v1", api_key="sk-kept"
        )
        rows.create(**common, provider_id="plain", base_url="http://plain.test/v1?team=@x")

        executor = MigrationExecutor(connection)
        executor.migrate(after)

        # The model as of that migration (later ones add columns).
        new = executor.loader.project_state(after).apps
        moved = {
            c.provider_id: c for c in new.get_model("accounts", "ProviderCredential").objects.all()
        }
        assert moved["vllm"].base_url == "http://llm.test:8000/v1"
        assert moved["vllm"].api_key == "s3cret@x"  # now encrypted at rest
        assert moved["lite"].base_url == "https://lite.test/v1"
        assert moved["lite"].api_key == "sk-kept"  # a key the user set is never replaced
        assert moved["plain"].base_url == "http://plain.test/v1?team=@x"
        with connection.cursor() as cursor:
            cursor.execute("SELECT base_url || ' ' || api_key FROM accounts_providercredential")
            stored = " ".join(row[0] for row in cursor.fetchall())
        assert "s3cret" not in stored and "u:p@" not in stored
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
