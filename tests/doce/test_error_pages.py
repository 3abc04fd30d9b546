"""doce's own 404 and 500 pages (styled like the rest, not Django's bare defaults)."""

import pytest
from django.test import RequestFactory
from django.views.defaults import server_error


@pytest.mark.django_db
def test_it_answers_an_unknown_address_with_doces_404_page(bob_client):
    answer = bob_client.get("/no/such/page")
    assert answer.status_code == 404
    page = answer.content.decode()
    assert "This page doesn't exist" in page
    assert "/static/css/doce.css" in page or "doce." in page
    assert 'href="/"' in page


def test_it_renders_the_500_page_without_a_request_context():
    answer = server_error(RequestFactory().get("/"))
    assert answer.status_code == 500
    page = answer.content.decode()
    assert "Something went wrong" in page
    assert "css/doce" in page


@pytest.mark.django_db
def test_it_renders_the_theme_the_cookie_chose(bob_client):
    bob_client.cookies["doce_theme"] = "dark"
    assert '<html lang="en" data-theme="dark">' in bob_client.get("/").content.decode()
    bob_client.cookies["doce_theme"] = '"><script>'
    assert '<html lang="en">' in bob_client.get("/").content.decode()
