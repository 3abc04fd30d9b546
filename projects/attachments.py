"""Files a user attaches to a prompt: checked here, then sent to the agent as file parts.

The one home of the attachment rules (the chat and the API both call `check_attachments`):

- at most `MAX_ATTACHMENTS` (5) per prompt;
- images: PNG, JPEG, WebP or GIF, at most `MAX_IMAGE_BYTES` (5 MB), recognised by their
  content (magic bytes, then fully decoded with Pillow: OpenCode drops a prompt whose image
  it cannot decode without saying so), never by the file name;
- text files: at most `MAX_TEXT_BYTES` (1 MB) of UTF-8 without NUL or other control
  characters (tabs and line breaks are fine);
- anything else is refused with a message naming the file.

`check_attachments` returns `Attachment`s; `Attachment.part()` is the OpenCode file part
(`{"type": "file", "mime", "filename", "url": "data:<mime>;base64,…"}`) the prompt carries
after its text part. The data URL keeps the file in the conversation, so the chat can show it
again after a reload.

A prompt queued for a stopped project keeps its attachments on disk, not in the job's
payload (five images would be about 33 MB of base64 in the database): `store_queued` writes
each file to the project's `queued-attachments/` folder (beside `site/`, never mounted into a
container nor served; written to a temporary name, then renamed, so a crash leaves no half
file under a real id) and returns small references (`{"id", "filename", "mime"}`) for the
payload; `load_queued` reads them back when the prompt is sent, `discard_queued` removes them
once the agent has the prompt. Deleting the project removes the folder with the rest.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import secrets
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

MAX_ATTACHMENTS = 5
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_TEXT_BYTES = 1024 * 1024
NAME_MAX = 200
# The largest image (in pixels) decoded to check it: far above any screenshot, far below a
# decompression bomb.
MAX_IMAGE_PIXELS = 50_000_000

IMAGE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
)
# Control characters other than tab, line feed, carriage return and form feed.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
# The folder of a project's queued attachments (under `Project.root_dir`), and the shape of
# their ids (random, so a reference can never name another file).
QUEUED_DIR = "queued-attachments"
QUEUED_ID_PATTERN = r"^[0-9a-f]{32}$"
_QUEUED_ID = re.compile(QUEUED_ID_PATTERN)


class AttachmentRefused(ValueError):
    """An attachment breaks a rule; `str()` says which file and why (shown to the user)."""


@dataclass(frozen=True)
class Attachment:
    """A checked attachment: `filename` (as given, one line), `mime`, `data` (the bytes)."""

    filename: str
    mime: str
    data: bytes

    @property
    def is_image(self) -> bool:
        return self.mime.startswith("image/")

    def part(self) -> dict[str, str]:
        """The OpenCode file part of this attachment (a `data:` URL)."""
        encoded = base64.b64encode(self.data).decode("ascii")
        return {
            "type": "file",
            "mime": self.mime,
            "filename": self.filename,
            "url": f"data:{self.mime};base64,{encoded}",
        }


def decode_base64(name: str, text: str) -> bytes:
    """The bytes of a base64 text (a `data:…;base64,` prefix is allowed). Raises
    `AttachmentRefused` for text that is not base64."""
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise AttachmentRefused(f"{name}: the content is not valid base64.") from None


def check_attachments(files: list[tuple[str, bytes]]) -> list[Attachment]:
    """Check `files` (`(filename, bytes)` pairs) against the rules in the module doc.

    Returns one `Attachment` per file, in order. Raises `AttachmentRefused` at the first
    broken rule: nothing of the prompt is sent then.
    """
    if len(files) > MAX_ATTACHMENTS:
        raise AttachmentRefused(f"Attach at most {MAX_ATTACHMENTS} files to one message.")
    return [check_attachment(name, data) for name, data in files]


def check_attachment(filename: str, data: bytes) -> Attachment:
    """One file: its type from its content, its size within the limit of that type."""
    name = _clean_name(filename)
    kind = _image_kind(data)
    if kind is not None:
        if len(data) > MAX_IMAGE_BYTES:
            raise AttachmentRefused(f"{name}: images can be at most {_mb(MAX_IMAGE_BYTES)}.")
        _decode_image(name, data, kind)
        return Attachment(name, IMAGE_TYPES[kind], data)
    if not data:
        raise AttachmentRefused(f"{name}: the file is empty.")
    if len(data) > MAX_TEXT_BYTES:
        raise AttachmentRefused(
            f"{name}: text files can be at most {_mb(MAX_TEXT_BYTES)} "
            f"(images: PNG, JPEG, WebP or GIF up to {_mb(MAX_IMAGE_BYTES)})."
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or _CONTROL.search(text):
        raise AttachmentRefused(
            f"{name}: attach images (PNG, JPEG, WebP, GIF) or plain text files only."
        )
    return Attachment(name, "text/plain", data)


def _clean_name(filename: str) -> str:
    name = re.sub(r"[\x00-\x1f\x7f/\\]", "_", (filename or "").strip())[-NAME_MAX:]
    return name or "attachment"


def _image_kind(data: bytes) -> str | None:
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _decode_image(name: str, data: bytes, kind: str) -> None:
    broken = AttachmentRefused(f"{name}: the image cannot be read (damaged or incomplete).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[kind]) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise AttachmentRefused(f"{name}: the image has too many pixels.")
                image.load()
    except AttachmentRefused:
        raise
    except Exception:  # Pillow's decoders raise many kinds for damaged input
        raise broken from None


def _mb(size: int) -> str:
    return f"{size // (1024 * 1024)} MB"


# --- attachments of queued prompts ----------------------------------------------------------


class QueuedAttachmentMissing(LookupError):
    """A queued prompt's attachment is no longer on disk (removed by hand, or the data
    directory was restored from an older copy); `str()` says so for the user."""


def store_queued(root: Path, attachments: Sequence[Attachment]) -> list[dict[str, str]]:
    """Write `attachments` under `root / QUEUED_DIR` (mode 0600, each to a temporary name,
    then renamed into place) and return their references `{"id": 32 hex, "filename",
    "mime"}`, in order. On an error, the files written so far are removed again."""
    folder = root / QUEUED_DIR
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    refs: list[dict[str, str]] = []
    temporary: Path | None = None
    try:
        for attachment in attachments:
            ref = {"id": secrets.token_hex(16), "filename": attachment.filename}
            ref["mime"] = attachment.mime
            temporary = folder / f".{ref['id']}.tmp"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(attachment.data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, folder / ref["id"])
            temporary = None
            refs.append(ref)
    except BaseException:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        discard_queued(root, [ref["id"] for ref in refs])
        raise
    return refs


def load_queued(root: Path, refs: Iterable[dict[str, str]]) -> list[Attachment]:
    """The attachments `refs` (from `store_queued`) name. Raises `QueuedAttachmentMissing`
    when one is gone, `ValueError` for an id not of the stored shape."""
    loaded = []
    for ref in refs:
        try:
            data = _queued_path(root, ref["id"]).read_bytes()
        except FileNotFoundError:
            raise QueuedAttachmentMissing(
                f"{ref['filename']}: the attachment of this queued prompt is no longer "
                "stored; send the prompt again."
            ) from None
        loaded.append(Attachment(ref["filename"], ref["mime"], data))
    return loaded


def discard_queued(root: Path, ids: Iterable[str]) -> None:
    """Remove the stored attachments `ids` (those already gone are fine)."""
    for attachment_id in ids:
        _queued_path(root, attachment_id).unlink(missing_ok=True)


def _queued_path(root: Path, attachment_id: str) -> Path:
    if not _QUEUED_ID.match(attachment_id):
        raise ValueError("Not a stored attachment id.")
    return root / QUEUED_DIR / attachment_id
