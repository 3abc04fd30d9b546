import pytest

from doce.crypto import DecryptionError, decrypt, encrypt
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
