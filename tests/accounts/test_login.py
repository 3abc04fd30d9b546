import pytest
from django.conf import settings


@pytest.mark.django_db
def test_it_redirects_anonymous_users_to_login(client, alice):
    for path in ("/", "/users/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith(f"/login?next={path}")


@pytest.mark.django_db
def test_it_signs_in_and_out(client, alice):
    response = client.post("/login", {"username": "alice", "password": "alice-pass-1"})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200

    assert client.get("/logout").status_code == 405  # logging out is a POST (CSRF-protected)
    response = client.post("/logout")
    assert response.status_code == 302
    assert client.get("/").status_code == 302


@pytest.mark.django_db
def test_it_shows_an_error_for_a_wrong_password(client, alice):
    response = client.post("/login", {"username": "alice", "password": "nope"})
    assert response.status_code == 400
    assert b"Please enter a correct username and password" in response.content


@pytest.mark.django_db
def test_it_locks_out_after_repeated_failures(client, alice):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/login", {"username": "alice", "password": "wrong"})
    # Even the right password is refused while locked out.
    response = client.post("/login", {"username": "alice", "password": "alice-pass-1"})
    assert response.status_code == 429
    assert b"Too many sign-in attempts" in response.content
    assert client.get("/").status_code == 302


@pytest.mark.django_db
def test_it_sets_hardened_session_cookies(client, alice):
    response = client.post("/login", {"username": "alice", "password": "alice-pass-1"})
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["max-age"] == 30 * 24 * 3600


@pytest.mark.django_db
def test_it_enforces_csrf_on_login(alice):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/login", {"username": "alice", "password": "alice-pass-1"})
    assert response.status_code == 403


@pytest.mark.django_db
def test_it_locks_out_an_address_that_tries_many_usernames(client, alice, bob, charlie, settings):
    settings.DOCE_LOGIN_ADDRESS_FAILURE_LIMIT = 6
    attacker, neighbour = "203.0.113.7", "198.51.100.2"
    names = ["alice", "bob", "charlie", "dora", "eve", "mallory"]
    # One wrong password per username: far below the per-account limit (5) each time.
    statuses = [
        client.post(
            "/login", {"username": name, "password": "guess"}, REMOTE_ADDR=attacker
        ).status_code
        for name in names
    ]
    assert statuses == [400, 400, 400, 400, 400, 429]
    # The address is paused for every account, even with the right password...
    response = client.post(
        "/login", {"username": "charlie", "password": "charlie-pass-1"}, REMOTE_ADDR=attacker
    )
    assert response.status_code == 429
    assert b"Sign-in is paused from your address" in response.content
    # ...while another address signs in as usual.
    response = client.post(
        "/login", {"username": "charlie", "password": "charlie-pass-1"}, REMOTE_ADDR=neighbour
    )
    assert response.status_code == 302


@pytest.mark.django_db
def test_it_forgets_an_address_s_failures_after_the_cooloff(client, alice, settings):
    from datetime import timedelta

    from axes.models import AccessAttempt
    from django.utils import timezone

    settings.DOCE_LOGIN_ADDRESS_FAILURE_LIMIT = 2
    for name in ("dora", "eve"):
        client.post("/login", {"username": name, "password": "guess"}, REMOTE_ADDR="203.0.113.9")
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(hours=1))
    response = client.post(
        "/login", {"username": "alice", "password": "alice-pass-1"}, REMOTE_ADDR="203.0.113.9"
    )
    assert response.status_code == 302
