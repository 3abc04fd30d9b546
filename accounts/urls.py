from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views

urlpatterns = [
    path("setup", views.setup, name="setup"),
    path("login", views.LoginView.as_view(), name="login"),
    path("logout", auth_views.LogoutView.as_view(), name="logout"),
    path("users/", views.users, name="users"),
    # /settings/
    path("settings/", views.settings_page, name="settings"),
    path("settings/providers/add", views.add_provider, name="settings-add-provider"),
    path(
        "settings/providers/<int:credential_id>/delete",
        views.delete_provider,
        name="settings-delete-provider",
    ),
    path(
        "settings/providers/<int:credential_id>/test",
        views.test_provider,
        name="settings-test-provider",
    ),
    path(
        "settings/providers/<int:credential_id>/fetch-models",
        views.fetch_models,
        name="settings-fetch-models",
    ),
    path("settings/default-model", views.change_default_model, name="settings-default-model"),
    path("settings/password", views.change_password, name="settings-password"),
    path("settings/tokens/add", views.add_api_token, name="settings-add-token"),
    path("settings/tokens/<int:token_id>/revoke", views.revoke_token, name="settings-revoke-token"),
]
