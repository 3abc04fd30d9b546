"""Forms of the project pages."""

from __future__ import annotations

from typing import cast

from django import forms

from doce.text import validate_text
from projects.services import PROMPT_MAX


class CreateProjectForm(forms.Form):
    """The dashboard's create form: a prompt and one of the user's models."""

    prompt = forms.CharField(
        label="Describe your website",
        max_length=PROMPT_MAX,
        validators=[validate_text],
        widget=forms.Textarea(
            attrs={"rows": 4, "placeholder": "A one-page site for a neighbourhood bakery…"}
        ),
    )
    model = forms.ChoiceField(label="Model", choices=())

    def __init__(self, *args, models: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["model"]).choices = [(m, m) for m in models]
