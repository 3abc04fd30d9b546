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


def sign_in(page, url, username, password):
    page.goto(url + "/login")
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(url + "/")


def test_it_serves_every_page_under_the_content_security_policy(doce_server, browser_page, shoot):
    # Runs after the setup test above (alice exists). The fixture fails the test on any
    # CSP violation Chromium reports while these pages load and run.
    page, url = browser_page, doce_server.url
    sign_in(page, url, "alice", "correct-horse-42")
    assert (
        "default-src 'self'"
        in page.context.request.get(url + "/").headers["content-security-policy"]
    )

    # A provider URL with credentials is refused with the reason, nothing is stored.
    page.goto(url + "/settings/")
    page.locator("#id_kind").select_option("openai-compatible")
    page.locator("#id_base_url").fill("http://bob:s3cret@llm.example.org/v1")
    page.locator("#id_provider_id").fill("vllm")
    page.locator("#id_model_names").fill("m")
    page.get_by_role("button", name="Add provider").click()
    page.get_by_text("Remove the user name and password from this URL").wait_for()
    shoot(page, "provider-url-refused")

    page.goto(url + "/users/")
    page.locator("#id_username").fill("bob")
    page.locator("#id_password1").fill("bob-pass-99xx")
    page.locator("#id_password2").fill("bob-pass-99xx")
    page.get_by_role("button", name="Add user").click()
    page.get_by_role("cell", name="bob", exact=True).wait_for()

    for path in ("/", "/queue/", "/admin/", "/admin/queue/job/", "/admin/auth/user/add/"):
        page.goto(url + path)
        page.wait_for_load_state("networkidle")
    page.goto(url + "/api/docs")
    page.locator(".swagger-ui .info .title").wait_for()  # Swagger UI ran its scripts
    shoot(page, "api-docs")

    # Bob is not an administrator: /users/ answers with a page, not a sign-in loop.
    page.context.clear_cookies()  # signed out
    sign_in(page, url, "bob", "bob-pass-99xx")
    response = page.goto(url + "/users/")
    assert response.status == 403 and page.url == url + "/users/"
    assert page.get_by_role("heading", name="You can't open this page").is_visible()
    shoot(page, "members-403")
