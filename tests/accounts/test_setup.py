import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from accounts.services import SetupAlreadyDone, create_first_admin

SETUP_FORM = {
    "username": "alice",
    "email": "alice@example.org",
    "password1": "a-long-pass-9",
    "password2": "a-long-pass-9",
}


@pytest.mark.django_db
def test_it_redirects_every_page_to_setup_while_no_user_exists(client):
    for path in ("/", "/login", "/users/", "/admin/", "/some/unknown/page"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"] == "/setup"


@pytest.mark.django_db
def test_it_serves_the_setup_form_and_healthz_before_setup(client):
    response = client.get("/setup")
    assert response.status_code == 200
    assert b'name="csrfmiddlewaretoken"' in response.content
    assert client.get("/healthz").status_code in (200, 503)


@pytest.mark.django_db
def test_it_creates_the_first_admin_and_signs_in(client):
    response = client.post("/setup", SETUP_FORM)
    assert response.status_code == 302
    assert response["Location"] == "/"
    alice = get_user_model().objects.get()
    assert alice.is_superuser and alice.is_staff
    assert alice.password.startswith("md5$")  # tests swap in a fast hasher
    assert client.get("/").status_code == 200


@pytest.mark.django_db
def test_it_rejects_mismatched_passwords_without_writing(client):
    response = client.post("/setup", {**SETUP_FORM, "password2": "something-else-7"})
    # The same answer as every other form's validation error (doce.pages.form_status).
    assert response.status_code == 400
    assert b"password fields" in response.content
    assert not get_user_model().objects.exists()


@pytest.mark.django_db
def test_it_refuses_setup_once_a_user_exists(client, bob):
    response = client.post("/setup", {**SETUP_FORM, "username": "mallory"})
    assert response.status_code == 302
    assert response["Location"] == "/login"
    assert list(get_user_model().objects.values_list("username", flat=True)) == ["bob"]
    assert client.get("/setup").status_code == 302


@pytest.mark.django_db(transaction=True)
def test_it_creates_one_admin_under_two_concurrent_submissions():
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def submit(name: str) -> None:
        barrier.wait()
        try:
            create_first_admin(username=name, email="", password="a-long-pass-9")
            outcomes.append("created")
        except SetupAlreadyDone:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(n,)) for n in ("alice", "mallory")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["created", "refused"]
    assert get_user_model().objects.count() == 1


def test_it_uses_scrypt_first_in_production_settings():
    from doce import settings as doce_settings

    assert doce_settings.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.ScryptPasswordHasher"
