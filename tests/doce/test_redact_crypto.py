import base64

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from doce.crypto import DecryptionError, decrypt, encrypt, needs_reencryption
from doce.redact import MASK, redact_mapping, redact_text


@pytest.mark.parametrize(
    "text",
    [
        "provider said: invalid key sk-or-v1-0123456789abcdef0123",
        "Authorization: Bearer abcdefghijklmnop.qrstu",
        "GET http://opencode:s3cr3t-pass@127.0.0.1:4100/doc failed",
        'config {"apiKey": "hunter2-hunter2"}',
        "password=correct-horse-battery",
    ],
)
def test_it_masks_secrets_in_text(text):
    redacted = redact_text(text)
    assert MASK in redacted
    for secret in (
        "0123456789abcdef0123",
        "abcdefghijklmnop",
        "s3cr3t-pass",
        "hunter2",
        "correct-horse",
    ):
        assert secret not in redacted


def test_it_masks_extra_known_secrets_and_secret_named_fields():
    assert redact_text("pw is plain-words-here", ("plain-words-here",)) == f"pw is {MASK}"
    assert redact_mapping({"api_key": "x1", "nested": {"password": "p"}, "n": 3}) == {
        "api_key": MASK,
        "nested": {"password": MASK},
        "n": 3,
    }


def test_it_round_trips_and_refuses_a_foreign_ciphertext(settings):
    token = encrypt("sk-live-key")
    assert token != "sk-live-key" and decrypt(token) == "sk-live-key"
    settings.DOCE_ENCRYPTION_KEY = "a different passphrase"
    with pytest.raises(DecryptionError):
        decrypt(token)


# Made by doce before scrypt (HKDF of the passphrase) from "sk-legacy-key-0123" with
# DOCE_ENCRYPTION_KEY="correct horse battery staple": an upgrade must keep reading it.
PASSPHRASE = "correct horse battery staple"
LEGACY_TOKEN = (
    "gAAAAABrC23KcAvu5mgmdyOkEGn8YvqTpFairPLnwXZUOavDftVPwb7H1t-wn6tDqty59mcbuDL4sjfUZUW61eY"
    "XNJHWcj6UEe5P4yhbnzj3enVT_KW9iuM="
)


# The previous release's derivation, written out here so the test pins it.
LEGACY_FERNET_KEY = base64.urlsafe_b64encode(
    HKDF(algorithm=hashes.SHA256(), length=32, salt=b"doce-encryption-v1", info=b"fernet").derive(
        PASSPHRASE.encode()
    )
)


@pytest.fixture
def passphrase_settings(settings, tmp_path):
    settings.DOCE_ENCRYPTION_KEY = PASSPHRASE
    settings.DOCE_ENCRYPTION_SALT_FILE = tmp_path / "encryption_salt"
    return settings


def test_it_stretches_a_passphrase_with_scrypt_and_a_kept_salt(passphrase_settings):
    from cryptography.fernet import Fernet, InvalidToken
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    token = encrypt("sk-new-key")
    salt_file = passphrase_settings.DOCE_ENCRYPTION_SALT_FILE
    salt = bytes.fromhex(salt_file.read_text())
    assert len(salt) == 16 and salt_file.stat().st_mode & 0o777 == 0o600
    stretched = Scrypt(salt=salt, length=32, n=2**17, r=8, p=1).derive(PASSPHRASE.encode())
    assert Fernet(base64.urlsafe_b64encode(stretched)).decrypt(token.encode()) == b"sk-new-key"
    # The old fast derivation does not read new ciphertexts.
    with pytest.raises(InvalidToken):
        Fernet(LEGACY_FERNET_KEY).decrypt(token.encode())


def test_it_reads_a_secret_encrypted_before_scrypt(passphrase_settings):
    assert decrypt(LEGACY_TOKEN) == "sk-legacy-key-0123"
    assert needs_reencryption(LEGACY_TOKEN)
    assert not needs_reencryption(encrypt("sk-legacy-key-0123"))


@pytest.mark.django_db(transaction=True)
def test_it_reencrypts_legacy_secrets_when_migrating(passphrase_settings, bob):
    from django.core.management import call_command
    from django.db import connection

    from accounts.models import ProviderCredential

    ProviderCredential.objects.create(user=bob, kind="openai", provider_id="openai", api_key="x")
    with connection.cursor() as cursor:  # the row as the previous release stored it
        cursor.execute("UPDATE accounts_providercredential SET api_key = %s", [LEGACY_TOKEN])

    call_command("migrate", verbosity=0)  # what `make run` does on every start

    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM accounts_providercredential")
        stored = cursor.fetchone()[0]
    assert stored != LEGACY_TOKEN and not needs_reencryption(stored)
    assert ProviderCredential.objects.get().api_key == "sk-legacy-key-0123"


def test_it_uses_a_fernet_key_as_is(settings):
    from cryptography.fernet import Fernet

    key = Fernet.generate_key()
    settings.DOCE_ENCRYPTION_KEY = key.decode()
    assert Fernet(key).decrypt(encrypt("sk-x").encode()) == b"sk-x"


@pytest.mark.django_db(transaction=True)
def test_it_keeps_secrets_readable_when_a_short_secret_key_is_replaced(settings, bob):
    # A SECRET_KEY too short for the new start-up check is replaced; listing the old one in
    # SECRET_KEY_FALLBACKS (Django's rotation setting) keeps its secrets readable.
    from django.core.management import call_command

    from accounts.models import ProviderCredential

    settings.DOCE_ENCRYPTION_KEY = ""
    settings.SECRET_KEY = "short-old-key"
    ProviderCredential.objects.create(user=bob, kind="openai", provider_id="openai", api_key="k1")
    settings.SECRET_KEY = "a-new-key-" + "0123456789abcdef" * 4
    assert ProviderCredential.objects.get().api_key == ""  # unreadable without the old key
    settings.SECRET_KEY_FALLBACKS = ["short-old-key"]
    assert ProviderCredential.objects.get().api_key == "k1"

    call_command("migrate", verbosity=0)

    settings.SECRET_KEY_FALLBACKS = []
    assert ProviderCredential.objects.get().api_key == "k1"  # now under the new key
