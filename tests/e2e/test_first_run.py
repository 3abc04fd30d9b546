"""The README's run command, in a real browser: setup, dashboard, sign out, sign in."""

import re

import httpx
import pytest

from tests.e2e.conftest import HEALTHZ_TOKEN

pytestmark = pytest.mark.e2e


def test_it_sets_up_and_signs_in_through_the_browser(doce_server, browser_page, shoot):
    page = browser_page
    page.goto(doce_server.url + "/")
    assert page.url.endswith("/setup")
    assert page.get_by_role("heading", name="Welcome to doce").is_visible()
    shoot(page, "setup")

    page.locator("#id_username").fill("alice")
    page.locator("#id_password1").fill("correct-horse-42")
    page.locator("#id_password2").fill("correct-horse-42")
    page.get_by_role("button", name="Create administrator").click()
    page.wait_for_url(doce_server.url + "/")
    assert page.get_by_role("heading", name="Your projects").is_visible()
    shoot(page, "dashboard")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login")
    page.locator("#id_username").fill("alice")
    page.locator("#id_password").fill("correct-horse-42")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(doce_server.url + "/")
    shoot(page, "signed-in-again")

    # Setup is closed for good now.
    page.goto(doce_server.url + "/setup")
    assert page.url.endswith("/login") or page.url.endswith("/")


def test_it_serves_hashed_static_files_and_no_external_assets(doce_server):
    page = httpx.get(doce_server.url + "/login", timeout=10)
    head = page.text.split("<body")[0]
    assert "https://" not in head and "http://" not in head  # nothing from a CDN
    stylesheet = re.search(r'href="(/static/css/doce\.[0-9a-f]{12}\.css)"', head)
    assert stylesheet, "collectstatic's hashed stylesheet is linked"
    css = httpx.get(doce_server.url + stylesheet.group(1), timeout=10)
    assert css.status_code == 200 and "--accent" in css.text
    anonymous = httpx.get(doce_server.url + "/healthz", timeout=10).json()
    assert set(anonymous) == {"status"}
    token = {"X-Doce-Health-Token": HEALTHZ_TOKEN}
    health = httpx.get(doce_server.url + "/healthz", headers=token, timeout=10).json()
    assert health["checks"]["database"]["ok"] is True
