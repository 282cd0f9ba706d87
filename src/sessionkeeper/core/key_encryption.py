"""Encryption of signing keys at rest, under a key-encryption key (KEK) from the environment.

Without a KEK, private signing keys sit in the store as plain PKCS#8 (as in GoTrue), and a copy
of the database is enough to forge tokens. With ``SESSIONKEEPER_KEY_ENCRYPTION_KEY`` set, new keys
are stored as AES-256-GCM ciphertext (key derived with HKDF-SHA256, the ``kid`` bound as associated
data so rows cannot be swapped), and a database copy without the KEK yields nothing usable.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "enc:v1:"
MIN_KEK_BYTES = 32
_INFO = b"sessionkeeper signing-key encryption v1"


class KeyEncryptionError(Exception):
    """Stored key material could not be decrypted (no KEK, or the wrong one)."""


def is_encrypted(stored: str) -> bool:
    return stored.startswith(PREFIX)


class KeyCipher:
    def __init__(self, kek: str | bytes) -> None:
        raw = kek.encode() if isinstance(kek, str) else kek
        if len(raw) < MIN_KEK_BYTES:
            raise ValueError(f"the key-encryption key must be at least {MIN_KEK_BYTES} bytes")
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO)
        self._aead = AESGCM(hkdf.derive(raw))

    def seal(self, plaintext: str, kid: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), kid.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, stored: str, kid: str) -> str:
        if not is_encrypted(stored):
            return stored  # a key stored before encryption was turned on
        try:
            raw = base64.urlsafe_b64decode(stored[len(PREFIX) :].encode())
            return self._aead.decrypt(raw[:12], raw[12:], kid.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise KeyEncryptionError(
                f"key {kid} does not decrypt with SESSIONKEEPER_KEY_ENCRYPTION_KEY"
            ) from exc


def open_stored(stored: str, kid: str, cipher: KeyCipher | None) -> str:
    """Plain key material from a stored row, decrypting when needed."""
    if cipher is not None:
        return cipher.open(stored, kid)
    if is_encrypted(stored):
        raise KeyEncryptionError(
            f"key {kid} is encrypted; set SESSIONKEEPER_KEY_ENCRYPTION_KEY to load it"
        )
    return stored
