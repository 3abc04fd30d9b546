"""Setup, sign-in and user management pages."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_required, user_passes_test
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.forms import AddUserForm, SetupForm
from accounts.services import SetupAlreadyDone, create_first_admin


def _setup_done() -> bool:
    return get_user_model().objects.exists()


@require_http_methods(["GET", "POST"])
def setup(request: HttpRequest) -> HttpResponse:
    """First-run setup: create the first administrator, then sign them in."""
    if _setup_done():
        messages.info(request, "doce is already set up. Sign in to continue.")
        return redirect("login")
    form = SetupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = create_first_admin(
                username=form.cleaned_data["username"],
                email=form.cleaned_data.get("email", ""),
                password=form.cleaned_data["password1"],
            )
        except SetupAlreadyDone:
            messages.info(request, "doce is already set up. Sign in to continue.")
            return redirect("login")
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.username}. doce is ready.")
        return redirect("dashboard")
    return render(request, "accounts/setup.html", {"form": form})


def _is_staff(user) -> bool:
    return user.is_active and user.is_staff


@login_required
@user_passes_test(_is_staff)
@require_http_methods(["GET", "POST"])
def users(request: HttpRequest) -> HttpResponse:
    """Administrators list users and add new ones."""
    form = AddUserForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        messages.success(request, f"Added {user.username}.")
        return redirect("users")
    people = get_user_model().objects.order_by("username")
    return render(request, "accounts/users.html", {"form": form, "people": people})
