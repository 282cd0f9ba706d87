"""Opaque refresh tokens: generation, the stored hash, and the sealed child.

Tokens are 256 random bits (RFC 9700 asks for at least 128). The store keeps only a SHA-256
hash, so a leaked database yields no usable token.

Rotation rule 3 must hand a client the *current* child of the token it presents, although the
store never holds a token in the clear. Each child is therefore stored sealed (AES-GCM) under a
key derived (HKDF) from its parent token: only someone presenting the parent can open it, which is
exactly the party rule 3 serves.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

TOKEN_BYTES = 32
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")
_SEAL_INFO = b"sessionkeeper refresh-token child seal v1"


def generate() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_well_formed(token: object) -> bool:
    """True when ``token`` has the shape of a token this server issues (43 base64url chars)."""
    return isinstance(token, str) and _TOKEN_RE.fullmatch(token) is not None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _seal_key(parent_token: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SEAL_INFO)
    return hkdf.derive(parent_token.encode())


def seal(child_token: str, *, parent_token: str, child_id: str) -> str:
    """Encrypt ``child_token`` so that only the holder of ``parent_token`` can recover it."""
    nonce = os.urandom(12)
    sealed = AESGCM(_seal_key(parent_token)).encrypt(nonce, child_token.encode(), child_id.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(sealed: str, *, parent_token: str, child_id: str) -> str | None:
    """The child token, or ``None`` if ``parent_token`` is not the one it was sealed under."""
    try:
        raw = base64.urlsafe_b64decode(sealed.encode())
        plain = AESGCM(_seal_key(parent_token)).decrypt(raw[:12], raw[12:], child_id.encode())
    except (InvalidTag, ValueError):
        return None
    return plain.decode()
