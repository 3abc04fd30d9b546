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
    assert response.status_code == 403
    response = bob_client.post(
        "/users/",
        {"username": "eve", "password1": "eve-pass-99xx", "password2": "eve-pass-99xx"},
    )
    assert response.status_code == 403
    assert not get_user_model().objects.filter(username="eve").exists()


@pytest.mark.django_db
def test_it_answers_a_signed_in_member_with_403_not_a_sign_in_loop(bob_client):
    # Bob used to bounce between /users/ and /login?next=/users/ (signed in, sent to sign
    # in, signed straight back): every staff-only page must answer him without a redirect.
    response = bob_client.get("/users/", follow=True)
    assert response.redirect_chain == []
    assert response.status_code == 403
    assert b"This page is for administrators" in response.content
    assert b"Sign out" in response.content  # doce's own page, with its navigation
    # Django admin shows its own sign-in page with a note, and does not bounce him back.
    response = bob_client.get("/admin/", follow=True)
    assert response.status_code == 200
    assert [url for url, _ in response.redirect_chain] == ["/admin/login/?next=/admin/"]
    assert b"not authorized to access this page" in response.content
    # The queue's staff-only actions are not there for him at all.
    for path in ("/queue/pause", "/queue/resume"):
        assert bob_client.post(path).status_code == 404, path


@pytest.mark.django_db
def test_it_still_sends_anonymous_visitors_of_staff_pages_to_sign_in(client, alice):
    response = client.get("/users/")
    assert response.status_code == 302
    assert response["Location"] == "/login?next=/users/"


@pytest.mark.django_db
def test_it_rejects_a_duplicate_username(alice_client, bob):
    response = alice_client.post(
        "/users/",
        {"username": "bob", "password1": "bob-pass-99xx", "password2": "bob-pass-99xx"},
    )
    assert response.status_code == 400
    assert b"already exists" in response.content
