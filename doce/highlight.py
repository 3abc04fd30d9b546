"""Syntax highlighting of site files with Pygments: the one choice of lexer by file name, and
the highlighted diffs of the chat's write/edit tool cards.

Everything is CSS classes (Pygments' short token classes, coloured by `static/css/pygments.css`
inside an element of class `hl`), never inline styles: the Content-Security-Policy refuses
them. Pygments escapes the text it highlights, so the HTML is safe to insert as is.

`diff_html(diff, path)` turns a unified diff (as `doce.opencode.normalize` writes it: `--- `/
`+++ ` file lines, `@@` hunk lines, then lines starting with `+`, `-` or a space) into one
`<span class="diff-line diff-KIND">` per line (KIND: `file`, `hunk`, `add`, `del`, `ctx`), the
code after the `+`/`-`/space marker highlighted in the language of `path`'s extension.
"""

from __future__ import annotations

import html

from pygments import lex
from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_for_filename
from pygments.token import STANDARD_TYPES, _TokenType
from pygments.util import ClassNotFound

# Past this many characters a diff is shown as plain text (lexing is linear, but a 400-line
# diff of minified code could still take long on a busy web process).
MAX_HIGHLIGHT_CHARS = 200_000


def lexer_for_filename(name: str) -> Lexer:
    """The Pygments lexer for a file called `name` (by its extension); Astro components get
    HTML's (front matter and markup read well), anything unknown plain text. Keeps leading
    and trailing newlines (`stripnl=False`), so line numbers stay true."""
    try:
        return get_lexer_for_filename(name, stripnl=False)
    except ClassNotFound:
        if name.endswith(".astro"):
            return get_lexer_for_filename("x.html", stripnl=False)
        return TextLexer(stripnl=False)


def _kind(line: str) -> str:
    if line.startswith(("--- ", "+++ ")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    return {"+": "add", "-": "del"}.get(line[:1], "ctx")


def _css_class(token: _TokenType) -> str:
    """Pygments' short class of `token` (its own, else its nearest parent's); "" for text."""
    current: _TokenType | None = token
    while current is not None and current not in STANDARD_TYPES:
        current = current.parent
    return STANDARD_TYPES.get(current, "") if current is not None else ""


def _highlighted_lines(code_lines: list[str], path: str) -> list[str]:
    """Each of `code_lines` as highlighted HTML. The lines are lexed as one text, so a
    construct over several lines (a comment, a template string) keeps its colour."""
    text = "\n".join(code_lines) + "\n"
    if len(text) > MAX_HIGHLIGHT_CHARS:
        return [html.escape(line, quote=False) for line in code_lines]
    out: list[list[str]] = [[]]
    for token, value in lex(text, lexer_for_filename(path.rsplit("/", 1)[-1])):
        css = _css_class(token)
        for i, piece in enumerate(value.split("\n")):
            if i:
                out.append([])
            if piece:
                escaped = html.escape(piece, quote=False)
                out[-1].append(f'<span class="{css}">{escaped}</span>' if css else escaped)
    return ["".join(parts) for parts in out[: len(code_lines)]] + [""] * (
        len(code_lines) - len(out)
    )


def diff_html(diff: str, path: str) -> str:
    """The unified `diff` of the file at `path` (relative, for its extension) as HTML: one
    `<span class="diff-line diff-KIND">` per line, ending in a newline, for a `<pre
    class="tool-diff hl">`. The marker (`+`, `-`, space) stays plain text, the code after it
    is highlighted; file and hunk lines are escaped text."""
    lines = diff.split("\n")
    kinds = [_kind(line) for line in lines]
    code_at = [i for i, kind in enumerate(kinds) if kind in ("add", "del", "ctx")]
    codes = _highlighted_lines([lines[i][1:] for i in code_at], path)
    highlighted = dict(zip(code_at, codes, strict=True))
    out = []
    for i, (line, kind) in enumerate(zip(lines, kinds, strict=True)):
        if i in highlighted:
            body = html.escape(line[:1], quote=False) + highlighted[i]
        else:
            body = html.escape(line, quote=False)
        out.append(f'<span class="diff-line diff-{kind}">{body}\n</span>')
    return "".join(out)
