"""Encryption at rest for provider keys and agent passwords.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`). The key comes from
`DOCE_ENCRYPTION_KEY`:

- a Fernet key (44 url-safe base64 characters) is used as is;
- any other text is a passphrase, stretched with scrypt (N=2**17, r=8, p=1: the OWASP
  password-storage parameters, about 128 MiB and a fraction of a second, once per process)
  and this installation's random salt, kept in `$DOCE_DATA_DIR/encryption_salt` (made on
  first use, mode 0600), so a stolen database cannot be attacked with a fast guess loop;
- unset, it is derived from `SECRET_KEY` with HKDF-SHA256: that key is 50+ random characters
  (enforced outside DEBUG by `doce.config`), so it needs no stretching.

Older keys only decrypt (`Keyring.legacy`, tried after the current key): the HKDF derivation
of a passphrase (how releases before scrypt derived it) and, for the `SECRET_KEY`-derived
default, the keys derived from Django's `SECRET_KEY_FALLBACKS` (replacing a `SECRET_KEY`).
`reencrypt_legacy_secrets` rewrites such ciphertexts under the current key after every
`manage.py migrate` (`doce.apps`). A key that is gone makes stored ciphertexts unreadable:
`DecryptionError` is raised and the user re-enters the secret.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from django.conf import settings
from django.db import models
from django.db.models.functions import Cast

from doce.config import keep_generated

# scrypt cost for passphrases (CPU/memory cost N, block size r, parallelism p).
SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1


class DecryptionError(Exception):
    """A stored ciphertext cannot be read with the current key (key rotated or data damaged)."""


@dataclass(frozen=True)
class Keyring:
    """`current` encrypts and decrypts; `legacy` keys only decrypt older ciphertexts."""

    current: Fernet
    legacy: tuple[Fernet, ...] = ()


def _hkdf(material: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"doce-encryption-v1", info=b"fernet")
    return base64.urlsafe_b64encode(hkdf.derive(material.encode()))


def _scrypt(passphrase: str, salt: bytes) -> bytes:
    kdf = Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return base64.urlsafe_b64encode(kdf.derive(passphrase.encode()))


def _is_fernet_key(configured: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(configured.encode())) == 32
    except (binascii.Error, ValueError):
        return False


def installation_salt(path: Path) -> bytes:
    """This installation's scrypt salt (16 random bytes as hex), kept in `path` (mode 0600)."""
    return bytes.fromhex(keep_generated(path, lambda: secrets.token_hex(16)))


@lru_cache(maxsize=4)
def _keyring(
    configured: str, secret_key: str, fallbacks: tuple[str, ...], salt_file: str
) -> Keyring:
    if not configured:
        legacy = tuple(Fernet(_hkdf(old)) for old in fallbacks)
        return Keyring(Fernet(_hkdf(secret_key)), legacy=legacy)
    if _is_fernet_key(configured):
        return Keyring(Fernet(configured.encode()))
    salt = installation_salt(Path(salt_file))
    return Keyring(Fernet(_scrypt(configured, salt)), legacy=(Fernet(_hkdf(configured)),))


def get_keyring() -> Keyring:
    """Return the keys for the current settings (derived once per process and key)."""
    return _keyring(
        settings.DOCE_ENCRYPTION_KEY,
        settings.SECRET_KEY,
        tuple(settings.SECRET_KEY_FALLBACKS),
        str(settings.DOCE_ENCRYPTION_SALT_FILE),
    )


def _readable_by(fernet: Fernet, token: str) -> bool:
    try:
        fernet.decrypt(token.encode())
    except (InvalidToken, ValueError):
        return False
    return True


def encrypt(plaintext: str) -> str:
    """Encrypt text with the current key; returns a url-safe token. Empty text stays empty."""
    if not plaintext:
        return ""
    return get_keyring().current.encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """Decrypt a token made by `encrypt` (under the current key or a legacy one).

    Raises `DecryptionError` if no key of the keyring reads it.
    """
    if not token:
        return ""
    keyring = get_keyring()
    for fernet in (keyring.current, *keyring.legacy):
        try:
            return fernet.decrypt(token.encode()).decode()
        except (InvalidToken, ValueError):
            continue
    raise DecryptionError("stored secret cannot be decrypted with the current key")


def needs_reencryption(token: str) -> bool:
    """True when `token` is readable only through a legacy key (rewrite it with `encrypt`)."""
    keyring = get_keyring()
    if not token or not keyring.legacy or _readable_by(keyring.current, token):
        return False
    return any(_readable_by(fernet, token) for fernet in keyring.legacy)


class EncryptedTextField(models.TextField):
    """A TextField stored encrypted; Python code sees plaintext.

    Not searchable or orderable by value (each encryption is salted). Values that can no longer
    be decrypted load as "" and should be re-entered.
    """

    description = "Text encrypted at rest with doce's Fernet key"

    def from_db_value(self, value, expression, connection):
        if value is None:
            return value
        try:
            return decrypt(value)
        except DecryptionError:
            return ""

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None:
            return value
        return encrypt(value)


def reencrypt_legacy_secrets(model_classes, using: str = "default") -> int:
    """Rewrite under the current key every stored value of an `EncryptedTextField` of
    `model_classes` that only a legacy key reads.

    Returns how many values were rewritten (0 at once when there is no legacy key).
    Each row is updated only if it still holds the ciphertext that was read.
    """
    if not get_keyring().legacy:
        return 0
    rewritten = 0
    for model in model_classes:
        for field in model._meta.concrete_fields:
            if isinstance(field, EncryptedTextField):
                rewritten += _reencrypt_column(model, field.name, using)
    return rewritten


def _reencrypt_column(model, name: str, using: str) -> int:
    # Cast to a plain TextField reads (and matches) the stored ciphertext, not the plaintext.
    rows = model._base_manager.using(using).annotate(_stored=Cast(name, models.TextField()))
    rewritten = 0
    for pk, stored in rows.values_list("pk", "_stored").iterator():
        if needs_reencryption(stored):
            rewritten += rows.filter(pk=pk, _stored=stored).update(**{name: decrypt(stored)})
    return rewritten
