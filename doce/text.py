"""Text people type: the one home for which characters doce accepts in it.

Every text input goes through one of two rules, wherever it arrives (a pydantic model of the
JSON API or the chat socket, a Django form, a query parameter, a service function):

- **free text** (`clean_text`: prompts, messages): any character except the C0 controls
  other than tab, newline and carriage return (so NUL, ESC, BEL… are refused), DEL, and
  lone surrogates (`"\\ud800"` in JSON) that no database or UTF-8 encoder accepts;
- **a line** (`clean_line`: names, labels, filters): the same refusals, and also tab,
  newline, carriage return and the bidirectional embedding/override/isolate controls
  (U+202A to U+202E, U+2066 to U+2069) that make a name read differently from what it is;
  runs of whitespace collapse to one space and the ends are stripped.

Why refuse rather than store: Postgres rejects NUL in text and jsonb (the request then
failed with a 500 `DataError`) while SQLite stores it, so the same input behaved
differently by database; no control character is useful in a prompt or a name.

Errors are `InvalidText` (a `ValueError`, so pydantic reports it as a validation error of
the field) with a message fit for users. `validate_text` and `validate_line` are the same
rules as Django validators, `LineField` a form field that normalises like `clean_line`;
`query_line` reads a query parameter through `clean_line`; `Text` and `Line` are the
pydantic field types.
"""

from __future__ import annotations

import re
from typing import Annotated

from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict
from pydantic import AfterValidator, Field

# Character classes written so that Python's `re` and JSON Schema's (ECMA) regular
# expressions read them alike: the published patterns below say what the code checks.
# C0 controls except tab (09), newline (0a) and carriage return (0d); DEL.
_CONTROLS = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f"
# Bidirectional embeddings, overrides (U+202A to U+202E) and isolates (U+2066 to U+2069).
_BIDI = r"\u202a-\u202e\u2066-\u2069"
# Lone surrogates too (not published: JSON Schema validators cannot express them).
_FORBIDDEN_IN_TEXT = re.compile(rf"[{_CONTROLS}\ud800-\udfff]")
_BIDI_CONTROLS = re.compile(rf"[{_BIDI}]")
# JSON Schema `pattern`s of what `clean_text` and `clean_line` accept (for OpenAPI).
TEXT_PATTERN = rf"^[^{_CONTROLS}]*$"
LINE_PATTERN = rf"^[^{_CONTROLS}{_BIDI}]*$"
_WHITESPACE_RUN = re.compile(r"\s+")


class InvalidText(ValueError):
    """Text holds characters doce does not accept; `str()` says what to change."""


def clean_text(value: str) -> str:
    """Return free text `value` unchanged, or raise `InvalidText` for control characters
    (C0 except tab/newline/carriage return, DEL) and lone surrogates."""
    if _FORBIDDEN_IN_TEXT.search(value):
        raise InvalidText("Remove the control characters (such as NUL) from the text.")
    return value


def clean_line(value: str) -> str:
    """Return `value` as one line: whitespace runs (newlines and tabs too) become one space,
    the ends are stripped. Raises `InvalidText` for the characters `clean_text` refuses
    and for bidirectional controls (U+202A to U+202E, U+2066 to U+2069)."""
    clean_text(value)
    if _BIDI_CONTROLS.search(value):
        raise InvalidText("Remove the text-direction control characters from the text.")
    return _WHITESPACE_RUN.sub(" ", value).strip()


def without_bidi_controls(value: str) -> str:
    """`value` with the bidirectional controls `clean_line` refuses removed (for text
    derived from free text, such as a project name made from its prompt)."""
    return _BIDI_CONTROLS.sub("", value)


def validate_text(value: str) -> None:
    """Django validator for `clean_text`: raises `ValidationError` (code `control_chars`)."""
    _as_django(clean_text, value)


def validate_line(value: str) -> None:
    """Django validator for `clean_line`'s refusals (the form field keeps its own stripping):
    raises `ValidationError` (code `control_chars`)."""
    _as_django(clean_line, value)


def _as_django(rule, value: str) -> None:
    try:
        rule(value)
    except InvalidText as exc:
        raise ValidationError(str(exc), code="control_chars") from None


class LineField(forms.CharField):
    """A form field for one line of text, normalised by `clean_line`; refusals are
    `ValidationError`s (code `control_chars`). `max_length` applies to the result."""

    def to_python(self, value):
        value = super().to_python(value)
        try:
            return clean_line(value)
        except InvalidText as exc:
            raise ValidationError(str(exc), code="control_chars") from None


def query_line(params: QueryDict, name: str, *, max_length: int) -> str:
    """Query parameter `name` through `clean_line`, cut to `max_length` characters ("" when
    absent). Raises `InvalidText`; callers answer 400."""
    return clean_line(params.get(name, ""))[:max_length]


# pydantic field types applying the same rules (a refusal is a 422 naming the field), with
# the rule published in their JSON Schema.
Text = Annotated[
    str, AfterValidator(clean_text), Field(json_schema_extra={"pattern": TEXT_PATTERN})
]
Line = Annotated[
    str, AfterValidator(clean_line), Field(json_schema_extra={"pattern": LINE_PATTERN})
]
