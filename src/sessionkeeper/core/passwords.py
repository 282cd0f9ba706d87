"""argon2id password hashing, with a constant-cost path for unknown users and a cap on how
many hashes run at once."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from sessionkeeper.errors import AuthError


class Passwords:
    """Hashes and checks passwords with argon2id (RFC 9106 parameters by default).

    ``check_unknown`` spends the same work as a real check, so a sign-in for an unknown email
    takes as long as one with a wrong password and the answer (``invalid_credentials``) is the same.

    Each hash takes ~64 MiB and a core for a few hundred ms. At most ``max_concurrent`` run at
    once (default: the number of CPUs); a request that cannot get a slot within ``wait`` seconds
    is answered 503 with ``Retry-After`` instead of queueing memory until the process is killed.
    """

    def __init__(
        self,
        hasher: argon2.PasswordHasher | None = None,
        *,
        max_concurrent: int | None = None,
        wait: float = 10.0,
    ) -> None:
        self._hasher = hasher or argon2.PasswordHasher()
        self._slots = threading.BoundedSemaphore(max_concurrent or max(2, os.cpu_count() or 2))
        self._wait = wait
        self._dummy = self._hasher.hash("sessionkeeper-dummy-password")

    @contextmanager
    def _slot(self) -> Iterator[None]:
        if not self._slots.acquire(timeout=self._wait):
            raise AuthError(
                "service_unavailable",
                "Too many password checks at once; retry shortly",
                headers={"Retry-After": "1"},
            )
        try:
            yield
        finally:
            self._slots.release()

    def hash(self, password: str) -> str:
        with self._slot():
            return self._hasher.hash(password)

    def check(self, stored_hash: str, password: str) -> bool:
        with self._slot():
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
