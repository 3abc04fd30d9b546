"""The workspace on a phone and doce's accessibility, in real Chromium on real components
(doce by `make run`, the real Docker Engine, the pinned OpenCode driven by the scripted
model). One doce for the module: the first-run fixture checks the setup page, then signs up.

- On a phone (390 x 844): create a project, prompt it, see the preview; the preview stays on
  /about across an agent edit and a reload; a runtime error in the preview offers "Fix with
  doce", which sends the error as a prompt.
- axe-core (from npm, installed into `.cache/axe` on first use, injected by Playwright)
  finds no serious or critical violation (nor a skipped heading level) on the setup, login,
  dashboard, workspace (with a highlighted diff open), files, settings, queue and job pages,
  in light and in dark; no page scrolls sideways at 360 px.

Screenshots of each stage go to test-artifacts/e2e/.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, ROOT
from tests.e2e.test_first_run import sign_in
from tests.e2e.test_main_flow import add_scripted_provider, sign_up

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

AXE_VERSION = "4.10.3"
AXE_DIR = ROOT / ".cache" / "axe"
STEP_TIMEOUT_MS = 120_000
PHONE = {"width": 390, "height": 844}
PASSWORD = "correct-horse-42"  # test_main_flow.sign_up's


def axe_source() -> str:
    """axe-core's browser bundle, installed with npm into `.cache/axe` (gitignored) once."""
    bundle = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
    package = AXE_DIR / "node_modules" / "axe-core" / "package.json"
    if not (package.is_file() and json.loads(package.read_text())["version"] == AXE_VERSION):
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed to install axe-core for the accessibility test")
        AXE_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--prefix", str(AXE_DIR), "--no-audit", "--no-fund",
             "--no-save", f"axe-core@{AXE_VERSION}"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    return bundle.read_text()


def serious_violations(page, axe: str) -> list[str]:
    """axe's serious and critical violations on the page as it is (WCAG 2.x A/AA rules and
    best practices), one line each; also heading order (axe calls it moderate; the
    workspace once skipped a level)."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(axe + "\n;0")  # by DevTools: the page's CSP stays as it is
    found = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
            .filter(v => v.impact === "serious" || v.impact === "critical"
                         || v.id === "heading-order")
            .map(v => v.id + ": " + v.nodes.slice(0, 3).map(n => n.target.join(" ")).join(", "))"""
    )
    return [f"{page.url}: {line}" for line in found]


def check_page(page, axe: str, shoot, stage: str) -> list[str]:
    """Scan in light and in dark (the device's preference, emulated), and measure sideways
    scrolling at 360 px. Returns the problems found."""
    problems = []
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        problems += [f"[{scheme}] {line}" for line in serious_violations(page, axe)]
    page.emulate_media(color_scheme="light")
    size = page.viewport_size
    page.set_viewport_size({"width": 360, "height": 780})
    page.wait_for_timeout(100)
    wider = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    if wider > 0:
        problems.append(f"{page.url}: {wider} px wider than a 360 px screen")
    shoot(page, f"{stage}-360")
    page.set_viewport_size(size)
    return problems


def focus_problems(page, presses: int) -> list[str]:
    """Tab through the page `presses` times: every control reached shows a focus ring (an
    outline, or the splitter's own bar). Returns the ones that do not."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    missing = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        shown = page.evaluate(
            """() => {
                const e = document.activeElement;
                if (!e || e === document.body) return "";
                const style = getComputedStyle(e);
                const ring = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2;
                const name = e.tagName.toLowerCase() + (e.className ? "." + e.className : "")
                    + (e.id ? "#" + e.id : "");
                return ring || e.matches("[data-splitter]") ? "" : name;
            }"""
        )
        if shown:
            missing.append(f"{page.url}: no visible focus on {shown}")
    return sorted(set(missing))


def new_page(playwright, **context_options):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    context = browser.new_context(**context_options)
    page = context.new_page()
    page.set_default_timeout(20_000)
    return browser, page


@pytest.fixture(scope="module")
def first_run(doce_server, scripted_model_url):
    """The setup page's axe findings (checked before anyone exists), then Alice signed up
    with the scripted model as her provider."""
    from playwright.sync_api import sync_playwright

    axe = axe_source()
    with sync_playwright() as playwright:
        browser, page = new_page(playwright, viewport={"width": 1280, "height": 860})
        page.goto(doce_server.url + "/")
        page.wait_for_url("**/setup")
        found = []
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            found += [f"[{scheme}] {line}" for line in serious_violations(page, axe)]
        page.emulate_media(color_scheme="light")
        page.set_viewport_size({"width": 360, "height": 780})
        wider = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        if wider > 0:
            found.append(f"{page.url}: {wider} px wider than a 360 px screen")
        page.set_viewport_size({"width": 1280, "height": 860})
        sign_up(page, doce_server.url)
        add_scripted_provider(page, doce_server.url, scripted_model_url)
        browser.close()
    return {"setup_violations": found, "axe": axe}


def preview(page):
    return page.frame_locator("[data-preview-frame]")


def frame_path(page, project_id: str) -> str:
    for frame in page.frames:
        if f"//p-{project_id}." in frame.url:
            return "/" + frame.url.split("://", 1)[1].split("/", 1)[1]
    raise AssertionError(f"no preview frame: {[f.url for f in page.frames]}")


def in_viewport(page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    size = page.viewport_size
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= size["height"]


def test_it_builds_and_previews_a_site_from_a_phone(first_run, doce_server, browser_page, shoot):
    page = browser_page
    page.set_viewport_size(PHONE)
    url = doce_server.url
    sign_in(page, url, "alice", PASSWORD)

    # Navigation sits behind the Menu button.
    assert not page.locator("#topnav").is_visible()
    page.get_by_role("button", name="Menu", exact=True).click()
    assert page.get_by_role("link", name="Settings").is_visible()
    shoot(page, "phone-menu")
    page.get_by_role("button", name="Menu", exact=True).click()

    page.locator("#id_prompt").fill("[script:pages] Harbour Lights Cafe")
    page.locator("#id_model").select_option("scripted/scripted")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/projects/*/")
    project_id = page.url.rstrip("/").rsplit("/", 1)[-1]

    # One view at a time with tabs at the bottom; the composer is on screen.
    tabbar = page.locator("[data-tabbar]")
    assert tabbar.is_visible()
    assert in_viewport(page, "#composer-text")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shoot(page, "phone-chat")
    page.locator(".msg-assistant", has_text="Done: three pages.").wait_for(timeout=STEP_TIMEOUT_MS)

    tabbar.get_by_role("button", name="Preview").click()
    assert not page.locator("#composer-text").is_visible()
    preview(page).locator("h1", has_text="Harbour Lights Cafe").wait_for(timeout=STEP_TIMEOUT_MS)
    shoot(page, "phone-preview")

    # The address field sets the page shown, and follows it.
    address = page.locator("[data-preview-path]")
    address.fill("/about")
    address.press("Enter")
    preview(page).locator("h1", has_text="About: Harbour Lights Cafe").wait_for()
    assert frame_path(page, project_id) == "/about"

    # An agent edit of /about reaches the page (HMR) without leaving it.
    tabbar.get_by_role("button", name="Chat").click()
    page.locator("#composer-text").fill("[script:about] Open every day")
    page.get_by_role("button", name="Send", exact=True).click()
    page.locator(".msg-assistant", has_text="about page is updated").wait_for(
        timeout=STEP_TIMEOUT_MS
    )
    tabbar.get_by_role("button", name="Preview").click()
    preview(page).locator("h1", has_text="About: Open every day").wait_for(timeout=30_000)
    assert frame_path(page, project_id) == "/about"
    assert address.input_value() == "/about"
    # A full reload (the Reload button: a fresh entry into the preview) comes back there too.
    page.get_by_role("button", name="Reload the preview").click()
    page.wait_for_timeout(500)
    preview(page).locator("h1", has_text="About: Open every day").wait_for()
    assert frame_path(page, project_id) == "/about"
    shoot(page, "phone-about-kept")

    # A runtime error in the page: the overlay offers to send it to the agent.
    address.fill("/broken")
    address.press("Enter")
    overlay = page.locator("[data-preview-error]")
    overlay.wait_for()
    assert "scripted runtime failure" in overlay.inner_text()
    shoot(page, "phone-error-overlay")
    overlay.get_by_role("button", name="Fix with doce").click()
    assert page.locator("#composer-text").is_visible()  # back on the chat
    page.locator(".msg-user", has_text="scripted runtime failure").wait_for(timeout=30_000)
    assert re.search(r"error on /broken", page.locator(".msg-user").last.inner_text())
    shoot(page, "phone-fix-sent")
    # A message that does not come from the preview frame's origin is ignored.
    page.evaluate(
        """() => window.postMessage(
            {type: "doce:preview-error", message: "forged", detail: "", path: "/"}, "*")"""
    )
    page.wait_for_timeout(500)
    # (The overlay itself may be up again: the frame is still on /broken, and the agent's
    # turn on the fix prompt can reload it, which reports the real error anew.)
    assert "forged" not in (page.locator("[data-preview-error-text]").text_content() or "")


def test_it_has_no_serious_accessibility_violations(first_run, doce_server, shoot):
    from playwright.sync_api import sync_playwright

    url = doce_server.url
    axe = first_run["axe"]
    problems = list(first_run["setup_violations"])
    with sync_playwright() as playwright:
        browser, page = new_page(playwright, viewport={"width": 1280, "height": 860})
        page.goto(url + "/login")
        problems += check_page(page, axe, shoot, "login")
        sign_in(page, url, "alice", PASSWORD)
        problems += check_page(page, axe, shoot, "dashboard")

        workspace = page.locator(".project-card .card-title a").first.get_attribute("href")
        page.goto(url + workspace)
        page.locator("[data-status-badge]").wait_for()
        # A write card open: its highlighted diff is scanned too (token colours on the added
        # lines' tint).
        write = page.locator(".tool-card[data-state=done]", has=page.locator(".tool-diff"))
        write.first.wait_for(state="attached", timeout=STEP_TIMEOUT_MS)
        write.first.locator("summary").click()
        assert write.first.locator(".tool-diff.hl .diff-add span[class]").count() > 0
        problems += check_page(page, axe, shoot, "workspace")
        problems += focus_problems(page, presses=40)
        # The Files tab's page with code shown: line numbers and syntax colours, and the code
        # area reachable by keyboard.
        page.goto(url + workspace + "files/?path=src/pages/index.astro")
        assert page.locator(".code-scroll").get_attribute("tabindex") == "0"
        problems += check_page(page, axe, shoot, "files")

        # The theme switch pins a theme for every page (a cookie the server reads).
        page.locator("[data-theme-choice]").select_option("dark")
        page.goto(url + "/settings/")
        assert page.locator("html").get_attribute("data-theme") == "dark"
        assert not page.evaluate("document.activeElement && document.activeElement.id")
        problems += check_page(page, axe, shoot, "settings")
        page.locator("[data-theme-choice]").select_option("system")

        # The command palette: Ctrl+K, type, Enter.
        page.keyboard.press("Control+k")
        page.locator("#palette-input").fill("queue")
        page.keyboard.press("Enter")
        page.wait_for_url(url + "/queue/")
        problems += check_page(page, axe, shoot, "queue")

        page.goto(url + page.locator("a[href^='/queue/jobs/']").first.get_attribute("href"))
        problems += check_page(page, axe, shoot, "job")
        browser.close()
    assert problems == [], "\n".join(problems)
