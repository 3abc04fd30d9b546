import pytest
from django.contrib.auth import get_user_model


@pytest.mark.django_db
def test_it_lets_administrators_add_users(alice_client):
    response = alice_client.post(
        "/users/",
        {
            "username": "dora",
            "email": "",
            "password1": "dora-pass-99x",
            "password2": "dora-pass-99x",
        },
    )
    assert response.status_code == 302
    dora = get_user_model().objects.get(username="dora")
    assert not dora.is_staff
    assert b"dora" in alice_client.get("/users/").content


@pytest.mark.django_db
def test_it_hides_the_users_page_from_members(bob_client):
    response = bob_client.get("/users/")
    assert response.status_code == 302
    response = bob_client.post(
        "/users/",
        {"username": "eve", "password1": "eve-pass-99xx", "password2": "eve-pass-99xx"},
    )
    assert not get_user_model().objects.filter(username="eve").exists()


@pytest.mark.django_db
def test_it_rejects_a_duplicate_username(alice_client, bob):
    response = alice_client.post(
        "/users/",
        {"username": "bob", "password1": "bob-pass-99xx", "password2": "bob-pass-99xx"},
    )
    assert response.status_code == 200
    assert b"already exists" in response.content
