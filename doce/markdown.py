"""Render assistant Markdown to sanitized HTML on the server.

`render_markdown(text)` parses CommonMark (plus tables and strikethrough) with markdown-it-py
with raw HTML disabled, highlights fenced code with Pygments (CSS classes, no inline styles),
and then cleans the result with nh3 (an allow-list of tags, attributes and URL schemes), so
the HTML is safe to insert into the chat as is.

Images load only from doce itself (relative URLs) or from inline `data:image/…` URLs: an
image elsewhere would be fetched as soon as the chat shows it, so agent output could carry a
tracking or exfiltration URL. Such an image is shown as a link to its address instead, which
loads nothing until the user follows it. Table alignment becomes `align-*` classes, since
the Content-Security-Policy refuses inline styles.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

import nh3
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "span", "div",
    "blockquote", "ul", "ol", "li", "a", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td", "img",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "code": {"class"},
    "span": {"class"},
    "div": {"class"},
    "pre": {"class"},
    "ol": {"start"},
    "th": {"class"},
    "td": {"class"},
}
# "data" only survives on images (`_filter_attribute`).
URL_SCHEMES = {"http", "https", "mailto", "data"}
INLINE_IMAGE_TYPES = ("png", "jpeg", "gif", "webp", "avif", "svg+xml")
MAX_HIGHLIGHT_CHARS = 50_000

_formatter = HtmlFormatter(nowrap=True, classprefix="hl-")


def _highlight(code: str, lang: str, _attrs: str) -> str:
    if not lang or len(code) > MAX_HIGHLIGHT_CHARS:
        return ""  # markdown-it escapes it itself
    try:
        lexer = get_lexer_by_name(lang.split()[0], stripall=False)
    except ClassNotFound:
        return ""
    return highlight(code, lexer, _formatter)


# What browsers drop: tab and newlines anywhere in a URL, C0 controls and space at its ends.
_IGNORED_IN_URLS = re.compile(r"[\t\n\r]")
_C0_AND_SPACE = "".join(chr(code) for code in range(0x21))
_ALIGNMENT = re.compile(r"^text-align:(left|center|right)$")


def is_local_image_url(url: str) -> bool:
    """True if a chat image may load `url`: a URL relative to doce (`img/a.png`, `/a.png`)
    or an inline `data:image/<png|jpeg|gif|webp|avif|svg+xml>` URL. False for anything that
    names a scheme or a host (`https://…`, `//host/…`, `\\host\\…`)."""
    candidate = _IGNORED_IN_URLS.sub("", url).strip(_C0_AND_SPACE).replace("\\", "/")
    lowered = candidate.lower()
    if lowered.startswith("data:"):
        return lowered.startswith(tuple(f"data:image/{kind}" for kind in INLINE_IMAGE_TYPES))
    try:
        parts = urlsplit(candidate)
    except ValueError:
        return False
    return not parts.scheme and not parts.netloc and not candidate.startswith("//")


def _image(self, tokens, idx, options, env) -> str:
    """Render a local image as usual and any other as a link to it (nothing is fetched)."""
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    if is_local_image_url(src):
        return self.image(tokens, idx, options, env)
    alt = self.renderInlineAsText(token.children or [], options, env) or src
    return f'<a href="{html.escape(src)}">{html.escape(alt)}</a>'


def _alignment_classes(state) -> None:
    """markdown-it writes table alignment as `style="text-align:…"`; make it a class."""
    for token in state.tokens:
        if token.type in ("th_open", "td_open") and token.attrs.get("style"):
            match = _ALIGNMENT.match(str(token.attrs.pop("style")))
            if match:
                token.attrSet("class", f"align-{match.group(1)}")


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    """nh3's last word on each attribute: images only from doce or data:, no data: links."""
    if tag == "img" and attribute == "src":
        return value if is_local_image_url(value) else None
    if attribute == "href" and value.strip().lower().startswith("data:"):
        return None
    return value


_md = (
    MarkdownIt("commonmark", {"html": False, "highlight": _highlight})
    .enable("table")
    .enable("strikethrough")
)
_md.add_render_rule("image", _image)
_md.core.ruler.push("alignment_classes", _alignment_classes)


def render_markdown(text: str) -> str:
    """Return sanitized HTML for Markdown `text` ("" for blank text).

    Links get `rel="noopener noreferrer nofollow"`; only http(s)/mailto URLs survive;
    images only from doce or data: URLs (others become links); scripts, event handlers,
    inline styles and raw HTML never survive.
    """
    if not text or not text.strip():
        return ""
    try:
        rendered = _md.render(text)
    except Exception:  # a parser bug must not break the chat: show the text escaped
        rendered = f"<p>{html.escape(text)}</p>"
    return clean_html(rendered)


def clean_html(rendered: str) -> str:
    """Sanitize HTML with nh3: the tag, attribute and URL-scheme allow-lists above, local
    images only (`_filter_attribute`). Returns the cleaned HTML."""
    return nh3.clean(
        rendered,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        attribute_filter=_filter_attribute,
    )
