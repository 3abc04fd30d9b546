import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from projects import files

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
