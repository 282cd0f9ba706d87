"""argon2id password hashing, with a constant-cost path for unknown users."""

from __future__ import annotations

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Passwords:
    """Hashes and checks passwords with argon2id (RFC 9106 parameters by default).

    ``check_unknown`` spends the same work as a real check, so a sign-in for an unknown email
    takes as long as one with a wrong password and the answer (``invalid_credentials``) is the same.

    Each hash takes ~64 MiB and a core for a few hundred ms: the server runs these calls through
    ``server.password_slots``, which caps how many run at once.
    """

    def __init__(self, hasher: argon2.PasswordHasher | None = None) -> None:
        self._hasher = hasher or argon2.PasswordHasher()
        self._dummy = self._hasher.hash("sessionkeeper-dummy-password")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def check(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError, ValueError):
            # ValueError covers UnicodeEncodeError from a corrupt (non-ASCII) stored hash.
            return False

    def check_unknown(self, password: str) -> bool:
        self.check(self._dummy, password)
        return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)
