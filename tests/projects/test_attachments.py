"""Prompt attachments: the rules (`projects.attachments`) and the API refusing bad ones with
nothing queued."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from accounts.services import create_api_token
from jobqueue.models import Job
from projects.attachments import (
    MAX_IMAGE_BYTES,
    MAX_TEXT_BYTES,
    AttachmentRefused,
    check_attachment,
    check_attachments,
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
def test_the_api_refuses_a_bad_attachment_and_queues_nothing(alice, alice_provider):
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
    assert job.payload["parts"][0]["mime"] == "image/png"


def _post(token, project, body):
    from django.test import Client

    return Client(HTTP_AUTHORIZATION=f"Bearer {token}").post(
        f"/api/projects/{project.id}/prompt", json.dumps(body), content_type="application/json"
    )
