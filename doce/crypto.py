"""Encryption at rest for provider keys and agent passwords.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) with a key taken from
`DOCE_ENCRYPTION_KEY` — either a Fernet key (44 url-safe base64 chars) or any passphrase —
or, when unset, derived from `SECRET_KEY`. Derivation is HKDF-SHA256, so the same settings
always give the same key. Rotating the key makes stored ciphertexts unreadable:
`DecryptionError` is raised and the user re-enters the secret.
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models


class DecryptionError(Exception):
    """A stored ciphertext cannot be read with the current key (key rotated or data damaged)."""


def _derive(material: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"doce-encryption-v1", info=b"fernet")
    return base64.urlsafe_b64encode(hkdf.derive(material.encode()))


@lru_cache(maxsize=4)
def _fernet(configured: str, secret_key: str) -> Fernet:
    if configured:
        try:
            if len(base64.urlsafe_b64decode(configured.encode())) == 32:
                return Fernet(configured.encode())
        except (binascii.Error, ValueError):
            pass
        return Fernet(_derive(configured))
    return Fernet(_derive(secret_key))


def get_fernet() -> Fernet:
    """Return the Fernet instance for the current settings (cached per key)."""
    return _fernet(settings.DOCE_ENCRYPTION_KEY, settings.SECRET_KEY)


def encrypt(plaintext: str) -> str:
    """Encrypt text; returns a url-safe token (text). Empty text stays empty."""
    if not plaintext:
        return ""
    return get_fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """Decrypt a token made by `encrypt`. Raises `DecryptionError` if it cannot."""
    if not token:
        return ""
    try:
        return get_fernet().decrypt(token.encode()).decode()
    except (InvalidToken, ValueError) as exc:
        raise DecryptionError("stored secret cannot be decrypted with the current key") from exc


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
