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
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass

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
