"""Setup, user management and per-user settings pages."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model, login, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.forms import BaseForm
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import staff_required
from accounts.forms import (
    MAX_MODELS,
    AddUserForm,
    ApiTokenForm,
    DefaultModelForm,
    ProviderForm,
    SettingsPasswordForm,
    SetupForm,
)
from accounts.models import ApiToken, ProviderCredential
from accounts.providers import check_provider
from accounts.services import (
    SetupAlreadyDone,
    available_models,
    create_api_token,
    create_first_admin,
    default_model,
    revoke_api_token,
    set_default_model,
)
from accounts.usage import BudgetState, monthly_budget, tokens_this_month, usage_by_day_and_model
from doce.pages import form_status


class SignedInRequest(HttpRequest):
    """The request of a `login_required` view: `user` is a signed-in `User`."""

    user: User


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
    return render(request, "accounts/setup.html", {"form": form}, status=form_status(form))


class LoginView(auth_views.LoginView):
    """Django's sign-in page; a refused sign-in answers 400 like every other form."""

    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def form_invalid(self, form) -> HttpResponse:
        response = super().form_invalid(form)
        response.status_code = form_status(form)
        return response


@staff_required
@require_http_methods(["GET", "POST"])
def users(request: HttpRequest) -> HttpResponse:
    """Administrators list users and add new ones."""
    form = AddUserForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        messages.success(request, f"Added {user.username}.")
        return redirect("users")
    people = get_user_model().objects.order_by("username")
    return render(
        request, "accounts/users.html", {"form": form, "people": people}, status=form_status(form)
    )


# --- Settings -----------------------------------------------------------------------------


def _settings_page(request: SignedInRequest, **forms) -> HttpResponse:
    """The settings page; a submitted form passed in `forms` shows its errors (and 400)."""
    user = request.user
    models = available_models(user)
    context = {
        "providers": ProviderCredential.objects.filter(user=user),
        "instance_providers": ProviderCredential.objects.instance(),
        "usage": usage_by_day_and_model(user),
        "budget": BudgetState(budget=monthly_budget(user), used=tokens_this_month(user)),
        "provider_form": forms.get("provider_form") or ProviderForm(user=user),
        "default_form": forms.get("default_form")
        or DefaultModelForm(models=models, initial={"default_model": default_model(user)}),
        "password_form": forms.get("password_form") or SettingsPasswordForm(user),
        "token_form": forms.get("token_form") or ApiTokenForm(),
        "tokens": ApiToken.objects.active().filter(user=user),
        "new_token": forms.get("new_token"),
        "has_models": bool(models),
    }
    submitted = [form for form in forms.values() if isinstance(form, BaseForm)]
    return render(request, "accounts/settings.html", context, status=form_status(*submitted))


@login_required
@require_GET
def settings_page(request: SignedInRequest) -> HttpResponse:
    """Providers, default model, password and API tokens of the signed-in user."""
    return _settings_page(request)


@login_required
@require_POST
def add_provider(request: SignedInRequest) -> HttpResponse:
    form = ProviderForm(request.POST, user=request.user)
    if not form.is_valid():
        return _settings_page(request, provider_form=form)
    data = form.cleaned_data
    credential = ProviderCredential.objects.create(
        user=request.user,
        kind=data["kind"],
        provider_id=data["provider_id"],
        label=data.get("label", ""),
        base_url=data.get("base_url", ""),
        api_key=data.get("api_key", ""),
        model_names=data["model_names"],
        accepts_images=data.get("accepts_images", False),
    )
    messages.success(request, f"Added {credential.display_name}.")
    return redirect("settings")


@login_required
@require_POST
def delete_provider(request: HttpRequest, credential_id: int) -> HttpResponse:
    credential = get_object_or_404(ProviderCredential, user=request.user, pk=credential_id)
    credential.delete()
    messages.success(request, f"Removed {credential.display_name}.")
    return redirect("settings")


def _usable_provider(user, credential_id: int) -> ProviderCredential:
    """One of `user`'s own providers or an instance provider, else 404."""
    return get_object_or_404(ProviderCredential.objects.usable_by(user), pk=credential_id)


@login_required
@require_POST
def test_provider(request: SignedInRequest, credential_id: int) -> HttpResponse:
    """ "Test connection": one authenticated `GET <base URL>/models` from the doce host; the
    outcome (provider, URL, status or network error) is shown as a message (≤ 5 s)."""
    credential = _usable_provider(request.user, credential_id)
    result = check_provider(credential, request.user)
    (messages.success if result.ok else messages.error)(request, result.summary)
    return redirect(reverse("settings") + "#providers")


@login_required
@require_POST
def fetch_models(request: SignedInRequest, credential_id: int) -> HttpResponse:
    """ "Fetch models": replace an own provider's model list with what `GET /models` lists
    (at most `MAX_MODELS`), noting tool-call support where the server says so."""
    credential = get_object_or_404(ProviderCredential, user=request.user, pk=credential_id)
    result = check_provider(credential, request.user)
    if not result.ok:
        messages.error(request, result.summary)
    elif not result.models:
        messages.error(request, f"{credential.display_name} listed no models; add them by hand.")
    else:
        credential.model_names = result.models[:MAX_MODELS]
        credential.model_tools = {
            name: result.tools[name] for name in credential.model_names if name in result.tools
        }
        credential.save(update_fields=["model_names", "model_tools", "updated_at"])
        extra = len(result.models) - len(credential.model_names)
        messages.success(
            request,
            f"{credential.display_name}: {len(credential.model_names)} model(s) saved"
            + (f" ({extra} more not kept: at most {MAX_MODELS})." if extra > 0 else "."),
        )
    return redirect(reverse("settings") + "#providers")


@login_required
@require_POST
def change_default_model(request: SignedInRequest) -> HttpResponse:
    form = DefaultModelForm(request.POST, models=available_models(request.user))
    if not form.is_valid():
        return _settings_page(request, default_form=form)
    set_default_model(request.user, form.cleaned_data["default_model"])
    messages.success(request, "Default model saved.")
    return redirect("settings")


@login_required
@require_POST
def change_password(request: SignedInRequest) -> HttpResponse:
    form = SettingsPasswordForm(request.user, request.POST)
    if not form.is_valid():
        return _settings_page(request, password_form=form)
    user = form.save()
    update_session_auth_hash(request, user)  # stay signed in here, sign out other sessions
    messages.success(request, "Password changed.")
    return redirect("settings")


@login_required
@require_POST
def add_api_token(request: SignedInRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST)
    if not form.is_valid():
        return _settings_page(request, token_form=form)
    _, plaintext = create_api_token(request.user, form.cleaned_data["name"])
    # Shown once, on this response only; never stored or logged.
    return _settings_page(request, new_token=plaintext)


@login_required
@require_POST
def revoke_token(request: SignedInRequest, token_id: int) -> HttpResponse:
    if not revoke_api_token(request.user, token_id):
        raise Http404("No such token")
    messages.success(request, "Token revoked.")
    return redirect("settings")
