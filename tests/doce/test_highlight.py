"""Highlighted diffs of the chat's write/edit cards (`doce.highlight`) and their colours."""

import re
from pathlib import Path

from doce.highlight import diff_html, lexer_for_filename

STATIC = Path(__file__).resolve().parents[2] / "static" / "css"


def _lines(html: str) -> list[str]:
    return re.findall(r'<span class="diff-line diff-(\w+)">', html)


def test_it_highlights_each_line_in_the_files_language_and_keeps_the_line_kinds():
    diff = "--- src/a.js\n+++ src/a.js\n@@ -1,2 +1,2 @@\n const a = 1;\n-let b = 2;\n+let b = 3;"
    html = diff_html(diff, "src/a.js")
    assert _lines(html) == ["file", "file", "hunk", "ctx", "del", "add"]
    add = html.split('<span class="diff-line diff-add">', 1)[1]
    assert add.startswith('+<span class="kd">let</span>')  # marker plain, code highlighted
    assert '<span class="mi">3</span>' in add or '<span class="mf">3</span>' in add
    assert html.count("\n") == 6  # one line each, nothing lost or added


def test_a_comment_over_several_lines_keeps_its_colour():
    diff = "--- a.css\n+++ a.css\n@@ new file (3 lines) @@\n+/* one\n+two */\n+a { color: red }"
    html = diff_html(diff, "a.css")
    assert '+<span class="c">two */</span>' in html  # a comment, though "two" alone is not


def test_the_agents_text_is_escaped_never_markup():
    diff = '--- <x>.md\n+++ <x>.md\n@@ new @@\n+<script>alert("x")</script>\n+<img src=x onerror=1>'
    for path in ("page.html", "notes.md", "unknown.zzz"):
        html = diff_html(diff, path)
        assert "<script" not in html and "<img" not in html and "<x>" not in html
        assert html.count("&lt;") >= 4


def test_astro_files_read_as_html_and_unknown_ones_as_text():
    assert lexer_for_filename("index.astro").name == "HTML"
    assert lexer_for_filename("notes.zzz").name == "Text only"
    plain = diff_html("--- a.zzz\n+++ a.zzz\n@@ new @@\n+just text", "a.zzz")
    assert '<span class="diff-line diff-add">+just text\n</span>' in plain


def _luminance(colour: str) -> float:
    colour = colour.lstrip("#")
    if len(colour) == 3:
        colour = "".join(c * 2 for c in colour)
    channels = [int(colour[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _token_colours(css: str) -> list[str]:
    return re.findall(r"\.hl \.\w+ \{[^}]*?(?<!background-)color: (#[0-9A-Fa-f]{3,6})", css)


def test_every_token_colour_keeps_aa_contrast_on_added_and_removed_lines():
    pygments = (STATIC / "pygments.css").read_text()
    light_css, dark_part = pygments.split(':root[data-theme="dark"]', 1)
    dark_css = dark_part.split("@media", 1)[0]
    chat = (STATIC / "chat.css").read_text()
    backgrounds = {
        kind: re.search(
            rf"\.diff-{kind} \{{ background: light-dark\((#\w+), (#\w+)\); \}}", chat
        ).groups()
        for kind in ("add", "del")
    }
    for kind, (light_bg, dark_bg) in backgrounds.items():
        for colour in _token_colours(light_css):
            assert _contrast(colour, light_bg) >= 4.5, (kind, colour, light_bg)
        for colour in _token_colours(dark_css):
            assert _contrast(colour, dark_bg) >= 4.5, (kind, colour, dark_bg)
