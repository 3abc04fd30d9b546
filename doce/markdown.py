"""Render assistant Markdown to sanitized HTML on the server.

`render_markdown(text)` parses CommonMark (plus tables and strikethrough) with markdown-it-py
with raw HTML disabled, highlights fenced code with Pygments (CSS classes, no inline styles),
and then cleans the result with nh3 (an allow-list of tags, attributes and URL schemes), so
the HTML is safe to insert into the chat as is.
"""

from __future__ import annotations

import html

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
    "th": {"style"},
    "td": {"style"},
}
URL_SCHEMES = {"http", "https", "mailto"}
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


_md = (
    MarkdownIt("commonmark", {"html": False, "highlight": _highlight})
    .enable("table")
    .enable("strikethrough")
)


def render_markdown(text: str) -> str:
    """Return sanitized HTML for Markdown `text` ("" for blank text).

    Links get `rel="noopener noreferrer nofollow"`; only http(s)/mailto URLs survive;
    scripts, event handlers and raw HTML never do.
    """
    if not text or not text.strip():
        return ""
    try:
        rendered = _md.render(text)
    except Exception:  # a parser bug must not break the chat: show the text escaped
        rendered = f"<p>{html.escape(text)}</p>"
    return nh3.clean(
        rendered,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        filter_style_properties={"text-align"},
    )
