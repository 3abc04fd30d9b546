import pytest
from django.contrib.auth import get_user_model


@pytest.mark.django_db
def test_it_redirects_every_page_to_setup_while_no_user_exists(client):
    for path in ("/", "/login", "/users/", "/admin/"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"] == "/setup"


@pytest.mark.django_db
def test_it_creates_the_first_admin_and_signs_in(client):
    response = client.post(
        "/setup",
        {
            "username": "alice",
            "email": "",
            "password1": "a-long-pass-9",
            "password2": "a-long-pass-9",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == "/"
    alice = get_user_model().objects.get()
    assert alice.is_superuser and alice.is_staff
    assert client.get("/").status_code == 200
