"""Provider base URLs may no longer carry credentials; move existing ones out of the URL.

A `user:pass@` in a base URL was stored and shown in clear (Settings, admin, backups).
Leaving such rows in place with a warning would keep the secret readable until someone
acts, so this migration removes it from every URL at once:

- the URL keeps scheme, host, port, path and query, without the `user:pass@` part;
- when the provider has no API key yet, the password (or, without one, the user name)
  becomes its API key, stored encrypted like every key: OpenAI-compatible servers (vLLM,
  LiteLLM, LM Studio) check that key as a bearer token;
- when the provider already has a key, the URL's credentials are dropped: the key is what
  doce sends.
"""

from urllib.parse import unquote, urlsplit, urlunsplit

from django.db import migrations, models

import accounts.models


def _without_credentials(url):
    """(url without userinfo, the secret it carried or "")."""
    parts = urlsplit(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=hostport)), unquote(password or user)


def move_url_credentials_out(apps, schema_editor):
    ProviderCredential = apps.get_model("accounts", "ProviderCredential")
    for credential in ProviderCredential.objects.filter(base_url__contains="@"):
        try:
            if "@" not in urlsplit(credential.base_url).netloc:
                continue  # an "@" in the path or query is not a credential
        except ValueError:
            continue
        credential.base_url, secret = _without_credentials(credential.base_url)
        if secret and not credential.api_key:
            credential.api_key = secret
        credential.save(update_fields=["base_url", "api_key"])


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_apitoken_preferences_providercredential"),
    ]

    operations = [
        migrations.AlterField(
            model_name="providercredential",
            name="base_url",
            field=models.URLField(
                blank=True,
                default="",
                max_length=300,
                validators=[accounts.models.reject_url_credentials],
            ),
        ),
        migrations.RunPython(move_url_credentials_out, migrations.RunPython.noop),
    ]
