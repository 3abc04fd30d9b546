"""The settings page's polish (issue 14): nothing focused on load, help text shown as text,
provider fields marked per kind, a copy button for a new token."""

import pytest

pytestmark = pytest.mark.django_db


def test_it_focuses_nothing_on_load(bob_client):
    page = bob_client.get("/settings/").content.decode()
    assert "autofocus" not in page


def test_it_shows_placeholders_in_help_text(bob_client):
    page = bob_client.get("/settings/").content.decode()
    assert "chosen as ollama/&lt;model&gt;." in page
    # Django's own HTML help (the password rules) still renders as a list.
    assert "<li>" in page


def test_it_marks_the_fields_only_openai_compatible_providers_have(bob_client):
    page = bob_client.get("/settings/").content.decode()
    for field in ("id_base_url", "id_provider_id", "id_accepts_images"):
        start = page.index(f'id="{field}"')
        tag = page[page.rindex("<input", 0, start) : page.index(">", start)]
        assert 'data-shown-for="id_kind=openai-compatible"' in tag
    assert 'id="id_api_key"' in page and page.count("data-shown-for") == 3


def test_it_offers_to_copy_a_new_token(bob_client):
    page = bob_client.post("/settings/tokens/add", {"name": "ci"}, follow=True)
    html = page.content.decode()
    assert 'id="new-token"' in html
    assert 'data-copy-from="new-token"' in html
