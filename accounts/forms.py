"""Forms for first-run setup and adding users."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import BaseUserCreationForm


class SetupForm(BaseUserCreationForm):
    """Create the first administrator: username, optional email, password twice."""

    email = forms.EmailField(required=False, help_text="Optional. Used for password resets.")

    class Meta(BaseUserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")


class AddUserForm(BaseUserCreationForm):
    """An administrator adds a user; `is_staff` makes them an administrator too."""

    email = forms.EmailField(required=False)
    is_staff = forms.BooleanField(
        required=False,
        label="Administrator",
        help_text="Administrators can add users and see every job in the queue.",
    )

    class Meta(BaseUserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email", "is_staff")
