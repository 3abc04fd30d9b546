"""Prompt attachments: the rules (`projects.attachments`) and the API refusing bad ones with
nothing queued."""

from __future__ import annotations

import base64
import io
import json
import os

import pytest
from PIL import Image

from accounts.models import ProviderCredential
from accounts.services import create_api_token
from jobqueue.models import Job
from projects.attachments import (
    MAX_IMAGE_BYTES,
    MAX_TEXT_BYTES,
    QUEUED_DIR,
    AttachmentRefused,
    QueuedAttachmentMissing,
    check_attachment,
    check_attachments,
    discard_queued,
    load_queued,
    store_queued,
)
from projects.models import Project
from tests.projects.conftest import MODEL


def image(kind: str, size=(4, 4)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buffer, kind)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("kind", "mime"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")],
)
def test_it_reads_the_image_type_from_the_content_not_the_name(kind, mime):
    attachment = check_attachment("picture.txt", image(kind))
    assert attachment.mime == mime
    part = attachment.part()
    assert part["type"] == "file" and part["filename"] == "picture.txt"
    assert part["url"].startswith(f"data:{mime};base64,")


def test_it_takes_utf8_text_files():
    attachment = check_attachment(
        "notes.md", "# Hours\n\tMon to Fri, 8\u201318 \u00e9\r\n".encode()
    )
    assert attachment.mime == "text/plain"


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("logo.png", b"\x89PNG\r\n\x1a\n" + b"broken", "cannot be read"),
        ("app.exe", b"MZ\x90\x00\x03\x00", "images (PNG, JPEG, WebP, GIF) or plain text"),
        ("latin1.txt", "café".encode("latin-1"), "plain text"),
        ("empty.txt", b"", "empty"),
        ("big.txt", b"a" * (MAX_TEXT_BYTES + 1), "at most 1 MB"),
    ],
)
def test_it_refuses_what_is_not_an_image_or_text_and_names_the_file(name, data, says):
    with pytest.raises(AttachmentRefused) as refused:
        check_attachment(name, data)
    assert name in str(refused.value) and says in str(refused.value)


def test_it_refuses_an_image_over_5_mb_and_more_than_5_files():
    big = image("PNG") + b"\x00" * MAX_IMAGE_BYTES
    with pytest.raises(AttachmentRefused, match="at most 5 MB"):
        check_attachment("huge.png", big)
    with pytest.raises(AttachmentRefused, match="at most 5 files"):
        check_attachments([(f"{i}.txt", b"x") for i in range(6)])
    assert len(check_attachments([(f"{i}.txt", b"x") for i in range(5)])) == 5


def test_it_keeps_a_file_name_to_one_safe_line():
    assert check_attachment("../../etc/\npasswd", b"x").filename == ".._.._etc__passwd"


@pytest.mark.django_db
def test_the_api_refuses_a_bad_attachment_and_queues_nothing(
    alice, alice_provider, settings, tmp_path
):
    settings.DATA_DIR = tmp_path
    _, token = create_api_token(alice, "t")
    project = Project.objects.create(
        owner=alice, name="S", prompt="p", model=MODEL, status=Project.Status.STOPPED
    )
    bad = base64.b64encode(b"\x89PNG\r\n\x1a\nnope").decode()
    response = _post(
        token,
        project,
        {"text": "Use it", "attachments": [{"name": "a.png", "content_base64": bad}]},
    )
    assert response.status_code == 400
    assert "a.png" in response.json()["detail"]
    assert Job.objects.count() == 0
    project.refresh_from_db()
    assert project.status == Project.Status.STOPPED  # not even started

    good = base64.b64encode(image("PNG")).decode()
    body = {"text": "Use it", "attachments": [{"name": "a.png", "content_base64": good}]}
    response = _post(token, project, body)
    assert response.status_code == 202 and response.json()["queued"] is True
    job = Job.objects.get(type="opencode.sendUserPrompt")
    # The payload names the file; the file itself waits on disk (not in the database).
    [ref] = job.payload["attachments"]
    assert (ref["filename"], ref["mime"]) == ("a.png", "image/png")
    assert good not in json.dumps(job.payload) and not job.payload.get("parts")
    stored = project.root_dir / QUEUED_DIR / ref["id"]
    assert stored.read_bytes() == image("PNG") and stored.stat().st_mode & 0o777 == 0o600


def test_a_queued_prompts_attachments_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    files = check_attachments([("a.txt", b"one"), ("b.txt", b"two"), ("c.txt", b"three")])
    renamed = []

    def crash_on_second(source, target):
        if renamed:
            raise OSError("disk full")
        renamed.append(target)
        os.rename(source, target)

    monkeypatch.setattr("projects.attachments.os.replace", crash_on_second)
    with pytest.raises(OSError):
        store_queued(tmp_path, files)
    assert list((tmp_path / QUEUED_DIR).iterdir()) == []  # no file, no temporary left
    monkeypatch.undo()

    refs = store_queued(tmp_path, files)
    assert [a.data for a in load_queued(tmp_path, refs)] == [b"one", b"two", b"three"]
    discard_queued(tmp_path, [ref["id"] for ref in refs])
    assert list((tmp_path / QUEUED_DIR).iterdir()) == []
    with pytest.raises(QueuedAttachmentMissing, match=r"a\.txt"):
        load_queued(tmp_path, refs[:1])


def test_a_stored_attachment_reference_never_leaves_its_folder(tmp_path):
    (tmp_path / "secret").write_text("x")
    for bad in ("../secret", "/etc/passwd", "", "A" * 32, "0" * 31):
        ref = {"id": bad, "filename": "a.txt", "mime": "text/plain"}
        with pytest.raises(ValueError):
            load_queued(tmp_path, [ref])
        with pytest.raises(ValueError):
            discard_queued(tmp_path, [bad])


def _post(token, project, body):
    from django.test import Client

    return Client(HTTP_AUTHORIZATION=f"Bearer {token}").post(
        f"/api/projects/{project.id}/prompt", json.dumps(body), content_type="application/json"
    )


@pytest.mark.django_db
def test_an_image_for_a_model_that_takes_none_is_refused_before_anything_happens(
    alice, settings, tmp_path
):
    settings.DATA_DIR = tmp_path
    credential = ProviderCredential.objects.create(
        user=alice,
        kind="openai-compatible",
        provider_id="ollama",
        base_url="http://127.0.0.1:11434/v1",
        model_names=["llama3"],
    )
    _, token = create_api_token(alice, "t")
    project = Project.objects.create(
        owner=alice, name="S", prompt="p", model="ollama/llama3", status=Project.Status.STOPPED
    )
    png = {"name": "logo.png", "content_base64": base64.b64encode(image("PNG")).decode()}
    response = _post(token, project, {"text": "Use it", "attachments": [png]})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "ollama/llama3 does not take images (logo.png)" in detail
    assert "accept images" in detail  # says how to mark a vision model
    assert Job.objects.count() == 0 and not project.root_dir.exists()
    project.refresh_from_db()
    assert project.status == Project.Status.STOPPED

    text = {"name": "a.txt", "content_base64": base64.b64encode(b"hours").decode()}
    assert _post(token, project, {"text": "Use it", "attachments": [text]}).status_code == 202
    credential.accepts_images = True
    credential.save()
    assert _post(token, project, {"text": "Use it", "attachments": [png]}).status_code == 202
