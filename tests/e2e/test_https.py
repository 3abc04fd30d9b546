"""The main flow's first half over HTTPS: doce and the preview behind the edge with Caddy's
internal CA (`DOCE_TLS_INTERNAL=true`). The preview frame is on
`https://p-<id>.localhost:<port>/`, shows the agent's heading, and nothing in the page or the
frame loads over plain HTTP (the `browser_page` fixture fails on a mixed-content report)."""

import pytest

from tests.e2e.conftest import start_doce
from tests.e2e.test_main_flow import (
    FIRST,
    STEP_TIMEOUT_MS,
    add_scripted_provider,
    preview_frame,
    preview_heading,
    sign_up,
    wait_for_badge,
)

pytestmark = [pytest.mark.e2e, pytest.mark.docker]


@pytest.fixture(scope="module")
def doce_https(tmp_path_factory):
    yield from start_doce(tmp_path_factory, DOCE_TLS_INTERNAL="true")


def test_the_preview_works_over_https_without_mixed_content(
    doce_https, scripted_model_url, browser_page, shoot
):
    page = browser_page
    url = doce_https.url
    assert url.startswith("https://")
    sign_up(page, url)
    add_scripted_provider(page, url, scripted_model_url)
    page.goto(url + "/")
    page.locator("#id_prompt").fill(FIRST)
    page.locator("#id_model").select_option("scripted/scripted")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/projects/*/")
    project_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    wait_for_badge(page, "Running")
    preview_heading(page).filter(has_text=FIRST).wait_for(timeout=STEP_TIMEOUT_MS)
    assert preview_frame(page, project_id).url.startswith("https://")
    shoot(page, "https-preview")
