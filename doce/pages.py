"""Rules shared by doce's HTML pages.

`form_status(*forms)` is the one rule for the status of a page that shows forms: a submitted
form with errors answers 400 Bad Request (as the JSON API does), everything else 200. Views
render the page with it instead of picking a status themselves.
"""

from __future__ import annotations

from django import forms as django_forms

INVALID_FORM_STATUS = 400


def form_status(*forms: django_forms.BaseForm | None) -> int:
    """HTTP status for a page showing `forms`: 400 if any bound form has errors, else 200.

    Unbound forms (a plain page view) and `None` entries count as valid.
    """
    for form in forms:
        if form is not None and form.is_bound and not form.is_valid():
            return INVALID_FORM_STATUS
    return 200
