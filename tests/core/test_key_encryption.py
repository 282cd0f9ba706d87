"""Signing keys at rest: sealed under the KEK, bound to their kid, unreadable without it."""

from __future__ import annotations

import pytest

from sessionkeeper.core.key_encryption import (
    KeyCipher,
    KeyEncryptionError,
    is_encrypted,
    open_stored,
)
from sessionkeeper.core.keys import SigningKey

KEK = "k" * 32


def test_round_trip_and_no_plaintext_in_the_stored_form() -> None:
    key = SigningKey.generate("ES256")
    pem = key.export()
    stored = KeyCipher(KEK).seal(pem, key.kid)
    assert is_encrypted(stored)
    assert "PRIVATE KEY" not in stored
    assert KeyCipher(KEK).open(stored, key.kid) == pem
    assert (
        SigningKey.load(key.kid, "ES256", open_stored(stored, key.kid, KeyCipher(KEK))).kid
        == key.kid
    )


def test_wrong_kek_or_swapped_kid_does_not_open() -> None:
    stored = KeyCipher(KEK).seal("material", "kid-1")
    with pytest.raises(KeyEncryptionError):
        KeyCipher("z" * 32).open(stored, "kid-1")
    with pytest.raises(KeyEncryptionError):
        KeyCipher(KEK).open(stored, "kid-2")  # a row copied under another kid
    with pytest.raises(KeyEncryptionError):
        KeyCipher(KEK).open(stored[:-4] + "AAAA", "kid-1")


def test_encrypted_rows_need_the_kek_and_plain_rows_still_load() -> None:
    stored = KeyCipher(KEK).seal("material", "kid-1")
    with pytest.raises(KeyEncryptionError, match="SESSIONKEEPER_KEY_ENCRYPTION_KEY"):
        open_stored(stored, "kid-1", None)
    assert open_stored("plain pem", "kid-0", KeyCipher(KEK)) == "plain pem"
    assert open_stored("plain pem", "kid-0", None) == "plain pem"


def test_short_kek_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        KeyCipher("short")
