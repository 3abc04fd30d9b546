import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from projects import files
from projects.models import Project

pytestmark = pytest.mark.django_db


def test_it_lists_the_site_without_generated_secret_or_linked_files(alice_project):
    entries, truncated = files.list_tree(alice_project)
    paths = [e.path for e in entries]
    assert paths == [
        "public",
        "public/logo.png",
        "src",
        "src/pages",
        "src/pages/index.astro",
        "package.json",
    ]
    assert not truncated


def test_it_shows_a_highlighted_file(alice_client, alice_project):
    response = alice_client.get(
        f"/projects/{alice_project.id}/files/", {"path": "src/pages/index.astro"}
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert 'class="hl"' in body and "index.astro" in body


@pytest.mark.parametrize(
    "path",
    [
        "../../outside.txt",
        "/etc/passwd",
        "src/../../outside.txt",
        "src/escape.txt",  # a symlink pointing out of the site
        ".env",
        "node_modules/astro/index.js",
        "src\\..\\..\\outside.txt",
        "src/pages/index.astro\x00.png",
    ],
)
def test_it_refuses_paths_outside_the_site(alice_client, alice_project, path):
    response = alice_client.get(f"/projects/{alice_project.id}/files/", {"path": path})
    assert response.status_code == 404
    body = response.content.decode()
    assert "host secret" not in body and "sk-planted-secret" not in body and "root:" not in body


def test_it_refuses_url_encoded_traversal(alice_client, alice_project):
    response = alice_client.get(
        f"/projects/{alice_project.id}/files/?path=%2e%2e%2f%2e%2e%2foutside.txt"
    )
    assert response.status_code == 404
    assert b"host secret" not in response.content


def test_it_uploads_an_asset_under_a_sanitized_name(alice_client, alice_project):
    upload = SimpleUploadedFile("My Ünicode photo (1).JPG", b"\xff\xd8\xff" + b"0" * 100)
    response = alice_client.post(f"/projects/{alice_project.id}/assets/upload", {"file": upload})
    assert response.status_code == 302
    assert (alice_project.site_dir / "public" / "My-Unicode-photo-1.jpg").is_file()


def test_it_keeps_both_files_when_names_clash(alice_client, alice_project):
    upload = SimpleUploadedFile("logo.png", b"\x89PNG second")
    alice_client.post(f"/projects/{alice_project.id}/assets/upload", {"file": upload})
    assert (alice_project.site_dir / "public" / "logo-1.png").read_bytes() == b"\x89PNG second"
    assert (alice_project.site_dir / "public" / "logo.png").read_bytes().startswith(b"\x89PNG\r\n")


@pytest.mark.parametrize("name", ["run.sh", "page.html", "noext", "evil.png.sh", ".png"])
def test_it_refuses_disallowed_asset_names(alice_client, alice_project, name):
    upload = SimpleUploadedFile(name, b"data")
    response = alice_client.post(f"/projects/{alice_project.id}/assets/upload", {"file": upload})
    assert response.status_code == 400
    public = sorted(p.name for p in (alice_project.site_dir / "public").iterdir())
    assert public == ["logo.png"]


def test_it_refuses_an_asset_over_10_mb_without_writing_it(alice_client, alice_project):
    big = SimpleUploadedFile("big.png", b"0" * (files.MAX_ASSET_BYTES + 1))
    response = alice_client.post(f"/projects/{alice_project.id}/assets/upload", {"file": big})
    assert response.status_code == 413
    assert b"larger than 10 MB" in response.content
    assert not (alice_project.site_dir / "public" / "big.png").exists()


def test_it_renames_and_deletes_assets_only_in_public(alice_client, alice_project):
    base = f"/projects/{alice_project.id}/assets"
    response = alice_client.post(f"{base}/rename", {"path": "public/logo.png", "name": "brand.png"})
    assert response.status_code == 302
    assert (alice_project.site_dir / "public" / "brand.png").is_file()
    response = alice_client.post(
        f"{base}/rename", {"path": "public/brand.png", "name": "brand.exe"}
    )
    assert response.status_code == 400
    response = alice_client.post(f"{base}/delete", {"path": "package.json"})
    assert response.status_code == 400
    assert (alice_project.site_dir / "package.json").exists()
    response = alice_client.post(f"{base}/delete", {"path": "public/../package.json"})
    assert response.status_code == 400
    response = alice_client.post(f"{base}/delete", {"path": "public/brand.png"})
    assert response.status_code == 302
    assert not (alice_project.site_dir / "public" / "brand.png").exists()


def test_it_exports_the_site_without_dependencies_build_output_or_secrets(
    alice_client, alice_project
):
    response = alice_client.get(f"/projects/{alice_project.id}/export")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = sorted(archive.namelist())
    assert names == [
        "Alice-s-bakery/package.json",
        "Alice-s-bakery/public/logo.png",
        "Alice-s-bakery/src/pages/index.astro",
    ]
    everything = b"".join(archive.read(n) for n in names)
    assert b"sk-planted-secret" not in everything and b"host secret" not in everything


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("get", "files/"),
        ("get", "files/?path=package.json"),
        ("get", "assets/"),
        ("post", "assets/upload"),
        ("post", "assets/rename"),
        ("post", "assets/delete"),
        ("get", "export"),
    ],
)
def test_it_hides_alices_files_from_bob(client, bob, alice_project, method, suffix):
    client.force_login(bob)
    response = getattr(client, method)(f"/projects/{alice_project.id}/{suffix}")
    assert response.status_code == 404


@pytest.fixture
def outside_file(alice_project, tmp_path):
    """A host file outside the site, and a symlink to it inside `public/`."""
    outside = tmp_path / "host-photo.png"
    outside.write_bytes(b"\x89PNG host file")
    (alice_project.site_dir / "public" / "linked.png").symlink_to(outside)
    return outside


@pytest.mark.parametrize("action", ["rename", "delete"])
def test_it_refuses_to_change_a_symlink_pointing_out_of_the_site(
    alice_client, alice_project, outside_file, action
):
    response = alice_client.post(
        f"/projects/{alice_project.id}/assets/{action}",
        {"path": "public/linked.png", "name": "renamed.png"},
    )
    assert response.status_code == 400
    assert outside_file.read_bytes() == b"\x89PNG host file"
    assert (alice_project.site_dir / "public" / "linked.png").is_symlink()
    assert not (alice_project.site_dir / "public" / "renamed.png").exists()
    assert not outside_file.with_name("renamed.png").exists()


@pytest.mark.parametrize("action", ["rename", "delete"])
def test_it_refuses_a_symlink_to_a_site_file_outside_public(alice_client, alice_project, action):
    (alice_project.site_dir / "public" / "pkg.json").symlink_to("../package.json")
    response = alice_client.post(
        f"/projects/{alice_project.id}/assets/{action}",
        {"path": "public/pkg.json", "name": "renamed.json"},
    )
    assert response.status_code == 400
    assert (alice_project.site_dir / "package.json").read_text() == '{"name": "bakery"}\n'


@pytest.mark.parametrize(
    "encoded_path",
    [
        "public%2F%2e%2e%2Fpackage.json",  # decodes to public/../package.json
        "public%2F%2E%2E%2F%2E%2E%2Foutside.txt",
        "public%2F%252e%252e%2Fpackage.json",  # double-encoded: a literal %2e%2e folder
        "%2Fetc%2Fpasswd",
        "public%2F..%5C..%5Coutside.txt",
    ],
)
@pytest.mark.parametrize("action", ["rename", "delete"])
def test_it_refuses_encoded_traversal_in_asset_paths(
    alice_client, alice_project, encoded_path, action
):
    response = alice_client.post(
        f"/projects/{alice_project.id}/assets/{action}",
        f"path={encoded_path}&name=moved.png",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400
    site = alice_project.site_dir
    assert (site / "package.json").read_text() == '{"name": "bakery"}\n'
    assert (site.parent.parent.parent / "outside.txt").read_text() == "host secret"
    assert not list(site.rglob("moved.png"))


def test_it_keeps_a_renamed_asset_in_its_folder(alice_client, alice_project):
    response = alice_client.post(
        f"/projects/{alice_project.id}/assets/rename",
        {"path": "public/logo.png", "name": "../../../escaped.png"},
    )
    assert response.status_code == 302
    inside = alice_project.site_dir / "public" / "escaped.png"
    assert inside.is_file()
    assert list(alice_project.root_dir.parent.parent.rglob("escaped.png")) == [inside]


def test_it_does_not_list_or_fill_a_public_folder_that_points_out_of_the_site(
    alice_client, alice_project, tmp_path
):
    # The agent can write anything into the site, symlinks included.
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    (host_dir / "host-private.png").write_bytes(b"\x89PNG")
    public = alice_project.site_dir / "public"
    (public / "logo.png").unlink()
    public.rmdir()
    public.symlink_to(host_dir)

    assert files.list_assets(alice_project) == []
    page = alice_client.get(f"/projects/{alice_project.id}/assets/")
    assert page.status_code == 200 and b"host-private" not in page.content
    upload = SimpleUploadedFile("new.png", b"\x89PNG new")
    response = alice_client.post(f"/projects/{alice_project.id}/assets/upload", {"file": upload})
    assert response.status_code == 400
    assert sorted(p.name for p in host_dir.iterdir()) == ["host-private.png"]


def test_it_refuses_uploads_into_a_dangling_public_link(alice_client, alice_project, tmp_path):
    public = alice_project.site_dir / "public"
    (public / "logo.png").unlink()
    public.rmdir()
    public.symlink_to(tmp_path / "nowhere")
    upload = SimpleUploadedFile("new.png", b"\x89PNG new")
    response = alice_client.post(f"/projects/{alice_project.id}/assets/upload", {"file": upload})
    assert response.status_code == 400
    assert b"public folder is a link" in response.content
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("action", ["rename", "delete"])
def test_it_refuses_a_link_to_another_asset_instead_of_changing_its_target(
    alice_client, alice_project, action
):
    (alice_project.site_dir / "public" / "alias.png").symlink_to("logo.png")
    response = alice_client.post(
        f"/projects/{alice_project.id}/assets/{action}",
        {"path": "public/alias.png", "name": "renamed.png"},
    )
    assert response.status_code == 400
    assert (alice_project.site_dir / "public" / "logo.png").is_file()
    assert not (alice_project.site_dir / "public" / "renamed.png").exists()


def test_it_answers_a_path_too_long_for_the_file_system_with_404(alice_client, alice_project):
    base = f"/projects/{alice_project.id}"
    for path in ("a" * 5000, "a" * 256, "/".join(["src"] * 1100)):
        response = alice_client.get(f"{base}/files/", {"path": path})
        assert response.status_code == 404
        assert "too long" in response.content.decode()


@pytest.mark.parametrize("action", ["rename", "delete"])
def test_it_answers_an_asset_name_too_long_for_the_file_system_with_400(
    alice_client, alice_project, action
):
    response = alice_client.post(
        f"/projects/{alice_project.id}/assets/{action}",
        {"path": "public/" + "a" * 300 + ".png", "name": "b.png"},
    )
    assert response.status_code == 400
    assert "too long" in response.content.decode()
    assert (alice_project.site_dir / "public" / "logo.png").is_file()


def test_it_skips_site_files_whose_names_are_not_utf8(alice_client, alice_project):
    # The agent can create any name its shell can: here `site/bad\xffname.txt`.
    site = bytes(alice_project.site_dir)
    for name in (b"bad\xffname.txt", b"public/also\xfe.png"):
        with open(site + b"/" + name, "wb") as handle:
            handle.write(b"x")
    base = f"/projects/{alice_project.id}"
    response = alice_client.get(f"{base}/files/")
    assert response.status_code == 200
    assert "package.json" in response.content.decode()
    response = alice_client.get(f"{base}/assets/")
    assert response.status_code == 200 and "logo.png" in response.content.decode()
    response = alice_client.get(f"{base}/export")
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(archive.namelist()) == [
        "Alice-s-bakery/package.json",
        "Alice-s-bakery/public/logo.png",
        "Alice-s-bakery/src/pages/index.astro",
    ]


def test_it_names_the_export_of_a_name_with_a_newline_safely(alice_client, alice_project):
    # Names stored before names were checked may hold a newline (a header injection).
    Project.objects.filter(pk=alice_project.pk).update(name="Bakery\r\nX-Evil: 1")
    response = alice_client.get(f"/projects/{alice_project.id}/export")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="Bakery-X-Evil-1.zip"'


def test_it_refuses_a_symlink_loop_the_agent_made(alice_client, alice_project):
    (alice_project.site_dir / "loop").symlink_to("loop")
    (alice_project.site_dir / "public" / "spin.png").symlink_to("spin.png")
    base = f"/projects/{alice_project.id}"
    assert alice_client.get(f"{base}/files/", {"path": "loop"}).status_code == 404
    assert alice_client.get(f"{base}/files/", {"path": "loop/x"}).status_code == 404
    for action in ("rename", "delete"):
        response = alice_client.post(
            f"{base}/assets/{action}", {"path": "public/spin.png", "name": "b.png"}
        )
        assert response.status_code == 400
    assert alice_client.get(f"{base}/export").status_code == 200
