"""The workspace's server-side polish (issue 14): the Assets tab's answers stay frameable by
doce, renaming keeps an asset's extension, the preview is entered at a chosen path, the
preview bridge is served with doce's origin, and the project menu offers valid actions."""

from __future__ import annotations

import pytest
from asgiref.testing import ApplicationCommunicator

from projects import preview_access
from projects.models import Project


def test_it_keeps_assets_error_answers_frameable_by_doce(alice_client, alice_project):
    base = f"/projects/{alice_project.id}/assets"
    answers = [
        alice_client.post(f"{base}/rename", {"path": "public/logo.png", "name": "x.exe"}),
        alice_client.post(f"{base}/delete", {"path": "package.json"}),
        alice_client.post(f"{base}/upload", {"embed": "1"}),  # no file chosen
    ]
    for answer in answers:
        assert answer.status_code == 400
        assert answer["X-Frame-Options"] == "SAMEORIGIN"
    assert alice_client.get(f"{base}/?embed=1")["X-Frame-Options"] == "SAMEORIGIN"


@pytest.mark.parametrize("name", ["brand", "brand.png", "BRAND.PNG", "../brand.png"])
def test_it_keeps_the_extension_when_renaming_an_asset(alice_client, alice_project, name):
    answer = alice_client.post(
        f"/projects/{alice_project.id}/assets/rename", {"path": "public/logo.png", "name": name}
    )
    assert answer.status_code == 302
    assert sorted(p.name.lower() for p in (alice_project.site_dir / "public").iterdir()) == [
        "brand.png"
    ]


def test_it_refuses_a_rename_that_changes_the_extension(alice_client, alice_project):
    public = alice_project.site_dir / "public"
    (public / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    answer = alice_client.post(
        f"/projects/{alice_project.id}/assets/rename",
        {"path": "public/favicon.svg", "name": "evil.png"},
    )
    assert answer.status_code == 400
    assert "Renaming keeps the file type" in answer.content.decode()
    assert (public / "favicon.svg").is_file() and not (public / "evil.png").exists()


def test_it_shows_the_name_without_its_extension_for_renaming(alice_client, alice_project):
    page = alice_client.get(f"/projects/{alice_project.id}/assets/").content.decode()
    assert 'name="name" value="logo"' in page
    assert "the extension .png stays" in page


def test_it_enters_the_preview_at_the_path_asked_for(alice_client, alice_project):
    Project.objects.filter(pk=alice_project.pk).update(preview_port=41234)
    enter = f"/projects/{alice_project.id}/preview/enter"
    answer = alice_client.get(enter, {"path": "/about?x=1"})
    assert answer.status_code == 302
    assert answer["Location"].endswith("&next=/about%3Fx%3D1")
    for bad in ("//evil.example/", "https://evil.example/", "/a\r\nSet-Cookie: x=1"):
        location = alice_client.get(enter, {"path": bad})["Location"]
        assert "&next=" not in location, bad


async def _get_bridge() -> tuple[int, dict, bytes]:
    async def django(scope, receive, send):
        raise AssertionError("passed to Django")

    scope = {"type": "http", "method": "GET", "path": "/.doce/bridge.js", "headers": []}
    comm = ApplicationCommunicator(preview_access.PreviewAccessApp(django), scope)
    await comm.send_input({"type": "http.request", "body": b""})
    start = await comm.receive_output(5)
    body = await comm.receive_output(5)
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body["body"]


async def test_it_serves_the_preview_bridge_with_doces_origin(settings):
    settings.DOCE_ORIGIN = "https://doce.example:8443"
    status, headers, body = await _get_bridge()
    assert status == 200
    assert headers["content-type"].startswith("text/javascript")
    assert b'var DOCE_ORIGIN = "https://doce.example:8443";' in body
    assert b"__DOCE_ORIGIN__" not in body


@pytest.mark.parametrize(
    ("status", "offered", "absent"),
    [
        ("running", ["Stop", "Restart preview"], ["Start"]),
        ("stopped", ["Start"], ["Stop", "Restart preview"]),
        ("error", ["Start", "Stop"], ["Restart preview"]),
    ],
)
def test_it_offers_only_the_actions_valid_in_the_projects_state(
    alice_client, alice_project, status, offered, absent
):
    Project.objects.filter(pk=alice_project.pk).update(status=status)
    page = alice_client.get(f"/projects/{alice_project.id}/").content.decode()
    for label in offered:
        assert f'data-action="{label}"' in page and f'data-action="{label}" hidden' not in page
    for label in absent:
        assert f'data-action="{label}" hidden' in page
    # Delete sits apart, styled as danger, and asks first.
    assert 'class="menu-danger"' in page
    assert 'data-confirm="Delete Alice' in page


def test_it_makes_the_code_area_a_keyboard_reachable_region(alice_client, alice_project):
    page = alice_client.get(
        f"/projects/{alice_project.id}/files/", {"path": "src/pages/index.astro"}
    ).content.decode()
    assert '<div class="code-scroll" tabindex="0" role="region"' in page
    assert 'aria-label="Contents of src/pages/index.astro"' in page


def test_the_model_picker_shows_the_projects_model_after_a_reload(alice_client, alice_project):
    from accounts.models import ProviderCredential

    ProviderCredential.objects.create(
        user=alice_project.owner,
        kind="openai-compatible",
        provider_id="local",
        base_url="http://127.0.0.1:11434/v1",
        model_names=["first", "second"],
    )
    alice_project.model = "local/second"  # chosen in the picker (`change_model`) earlier
    alice_project.save()
    page = alice_client.get(f"/projects/{alice_project.id}/").content.decode()
    assert '<option value="local/second" selected>' in page
    assert '<option value="local/first" >' in page or '<option value="local/first">' in page
