"""Protects password storage: argon2id, no exception on bad input, unknown users cost the same."""

from __future__ import annotations

import string
from typing import Any, Literal

import argon2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionkeeper.core.passwords import Passwords


def fast_hasher() -> argon2.PasswordHasher:
    return argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


class CountingHasher(argon2.PasswordHasher):
    """A fast hasher that records the hashes it was asked to verify."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.verified: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verified.append(hash if isinstance(hash, str) else hash.decode())
        return super().verify(hash, password)


@pytest.fixture(scope="module")
def passwords() -> Passwords:
    return Passwords(fast_hasher())


def test_hash_is_argon2id(passwords: Passwords) -> None:
    stored = passwords.hash("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert "correct horse battery" not in stored


def test_hash_is_salted(passwords: Passwords) -> None:
    assert passwords.hash("same") != passwords.hash("same")


def test_hash_uses_the_given_parameters(passwords: Passwords) -> None:
    assert "$m=1024,t=1,p=1$" in passwords.hash("pw")


def test_default_hasher_is_argon2id() -> None:
    assert Passwords()._hasher.type is argon2.Type.ID


def test_check_accepts_the_right_password(passwords: Passwords) -> None:
    stored = passwords.hash("correct horse battery")
    assert passwords.check(stored, "correct horse battery") is True


@pytest.mark.parametrize(
    "attempt",
    ["wrong", "", "correct horse batter", "Correct horse battery", "correct horse battery "],
)
def test_check_refuses_a_wrong_password(passwords: Passwords, attempt: str) -> None:
    stored = passwords.hash("correct horse battery")
    assert passwords.check(stored, attempt) is False


def test_check_handles_unicode_passwords(passwords: Passwords) -> None:
    stored = passwords.hash("pässwörd 🔑")
    assert passwords.check(stored, "pässwörd 🔑") is True
    assert passwords.check(stored, "passwort 🔑") is False


def test_check_unknown_is_always_false(passwords: Passwords) -> None:
    assert passwords.check_unknown("anything") is False
    assert passwords.check_unknown("") is False
    # even the dummy's own password never signs anyone in
    assert passwords.check_unknown("sessionkeeper-dummy-password") is False


def test_check_unknown_does_a_real_verification_with_the_same_parameters() -> None:
    hasher = CountingHasher()
    checker = Passwords(hasher)
    real = checker.hash("pw")
    checker.check(real, "wrong")
    checker.check_unknown("wrong")
    assert len(hasher.verified) == 2
    real_params, dummy_params = (h.split("$")[3] for h in hasher.verified)
    assert dummy_params == real_params  # same argon2 cost: timing does not tell users apart


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "garbage",
        "$argon2id$",
        "$argon2id$v=19$m=1024,t=1,p=1$",
        "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",  # bcrypt
        "pbkdf2_sha256$600000$salt$hash",
        "$argon2id$v=19$m=65536,t=3,p=4$!!!!$!!!!",
    ],
)
def test_garbage_stored_hash_is_false_not_an_exception(passwords: Passwords, stored: str) -> None:
    assert passwords.check(stored, "pw") is False


def test_truncated_stored_hash_is_false(passwords: Passwords) -> None:
    stored = passwords.hash("pw")
    for cut in (1, 5, len(stored) // 2, len(stored) - 1):
        assert passwords.check(stored[:cut], "pw") is False


@settings(max_examples=50)
@given(st.text(alphabet=string.printable, max_size=120))
def test_any_ascii_garbage_stored_hash_is_false(stored: str) -> None:
    result = Passwords(fast_hasher()).check(stored, "pw")
    assert result is False


@pytest.mark.parametrize("stored", ["é", "$argon2id$v=19$m=1024,t=1,p=1$sälz$häsh"])
def test_non_ascii_stored_hash_is_false_not_an_exception(passwords: Passwords, stored: str) -> None:
    assert passwords.check(stored, "pw") is False


def test_needs_rehash_follows_the_configured_parameters() -> None:
    weak, stronger = (
        Passwords(fast_hasher()),
        Passwords(argon2.PasswordHasher(time_cost=2, memory_cost=1024, parallelism=1)),
    )
    stored = weak.hash("pw")
    assert weak.needs_rehash(stored) is False
    assert stronger.needs_rehash(stored) is True


def test_hash_of_another_hasher_still_verifies() -> None:
    """Raising the cost must not lock existing users out before they are rehashed."""
    old: Any = Passwords(fast_hasher()).hash("pw")
    stronger = Passwords(argon2.PasswordHasher(time_cost=2, memory_cost=1024, parallelism=1))
    assert stronger.check(old, "pw") is True
