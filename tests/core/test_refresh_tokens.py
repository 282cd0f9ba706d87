"""Protects opaque refresh tokens: their shape, their hash and the child sealed under its parent."""

from __future__ import annotations

import base64
import re
import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from sessionkeeper.core import refresh_tokens
from sessionkeeper.core.refresh_tokens import (
    generate,
    hash_token,
    is_well_formed,
    seal,
    unseal,
)

B64URL = string.ascii_letters + string.digits + "-_"
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")

tokens = st.text(alphabet=B64URL, min_size=43, max_size=43)
# Every code point, lone surrogates included: what a JSON body's "\ud800" escape can produce.
# (st.text drops surrogates even from an explicit alphabet, so join a list of characters.)
any_char = st.characters() | st.characters(categories=["Cs"])
any_text = st.lists(any_char, max_size=200).map("".join)


# Generation -------------------------------------------------------------------------------------


def test_generate_gives_43_base64url_characters() -> None:
    for _ in range(200):
        token = generate()
        assert len(token) == 43
        assert TOKEN_RE.fullmatch(token)
        assert is_well_formed(token)


def test_generate_carries_256_random_bits() -> None:
    raw = base64.urlsafe_b64decode(generate() + "=")
    assert len(raw) == refresh_tokens.TOKEN_BYTES == 32


def test_generate_gives_distinct_values() -> None:
    assert len({generate() for _ in range(2000)}) == 2000


# Shape ------------------------------------------------------------------------------------------


@given(tokens)
def test_every_43_char_base64url_string_is_well_formed(token: str) -> None:
    assert is_well_formed(token)


@given(st.text(alphabet=B64URL).filter(lambda s: len(s) != 43))
def test_other_lengths_are_not_well_formed(token: str) -> None:
    assert not is_well_formed(token)


@given(tokens, st.integers(0, 42), any_char)
def test_one_foreign_character_makes_a_token_malformed(token: str, at: int, char: str) -> None:
    assume(char not in B64URL)
    assert not is_well_formed(token[:at] + char + token[at + 1 :])


@given(tokens)
def test_padding_or_whitespace_makes_a_token_malformed(token: str) -> None:
    for variant in (token + "=", token + "\n", " " + token, token[:-1] + "=", token + "\x00"):
        assert not is_well_formed(variant)


@given(any_text)
def test_is_well_formed_agrees_with_the_shape_on_arbitrary_text(text: str) -> None:
    assert is_well_formed(text) == (len(text) == 43 and all(c in B64URL for c in text))


@given(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.binary()
    | st.lists(st.text())
    | st.dictionaries(st.text(), st.text())
)
def test_non_strings_are_never_well_formed(value: object) -> None:
    assert not is_well_formed(value)


def test_bytes_of_a_valid_token_are_not_well_formed() -> None:
    assert not is_well_formed(generate().encode())


# Hash -------------------------------------------------------------------------------------------


def test_hash_is_hex_sha256_and_stable() -> None:
    token = generate()
    digest = hash_token(token)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert hash_token(token) == digest
    assert token not in digest
    assert hash_token("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@given(tokens, tokens)
def test_distinct_tokens_hash_differently(a: str, b: str) -> None:
    assume(a != b)
    assert hash_token(a) != hash_token(b)


# Sealing ----------------------------------------------------------------------------------------


@given(tokens, tokens, st.text(min_size=1, max_size=40))
def test_seal_unseal_round_trip(child: str, parent: str, child_id: str) -> None:
    sealed = seal(child, parent_token=parent, child_id=child_id)
    assert child not in sealed
    assert unseal(sealed, parent_token=parent, child_id=child_id) == child


def test_sealing_twice_gives_different_text() -> None:
    child, parent = generate(), generate()
    first = seal(child, parent_token=parent, child_id="c1")
    second = seal(child, parent_token=parent, child_id="c1")
    assert first != second  # a fresh nonce each time
    assert unseal(first, parent_token=parent, child_id="c1") == child
    assert unseal(second, parent_token=parent, child_id="c1") == child


def test_sealed_text_is_urlsafe_base64() -> None:
    sealed = seal(generate(), parent_token=generate(), child_id="c1")
    assert re.fullmatch(r"[A-Za-z0-9_-]+=*", sealed)


@given(tokens, tokens, tokens)
def test_unseal_with_the_wrong_parent_is_none(child: str, parent: str, other: str) -> None:
    assume(parent != other)
    sealed = seal(child, parent_token=parent, child_id="child-1")
    assert unseal(sealed, parent_token=other, child_id="child-1") is None


def test_unseal_with_the_child_itself_or_a_sibling_is_none() -> None:
    child, parent, sibling = generate(), generate(), generate()
    sealed = seal(child, parent_token=parent, child_id="child-1")
    assert unseal(sealed, parent_token=child, child_id="child-1") is None
    assert unseal(sealed, parent_token=sibling, child_id="child-1") is None
    assert unseal(sealed, parent_token="", child_id="child-1") is None


@given(tokens, tokens, st.text(max_size=40), st.text(max_size=40))
def test_unseal_with_the_wrong_child_id_is_none(
    child: str, parent: str, child_id: str, other_id: str
) -> None:
    assume(child_id != other_id)
    sealed = seal(child, parent_token=parent, child_id=child_id)
    assert unseal(sealed, parent_token=parent, child_id=other_id) is None


@given(tokens, tokens, st.data())
def test_any_flipped_bit_in_the_sealed_bytes_gives_none(
    child: str, parent: str, data: st.DataObject
) -> None:
    sealed = seal(child, parent_token=parent, child_id="child-1")
    raw = bytearray(base64.urlsafe_b64decode(sealed))
    index = data.draw(st.integers(0, len(raw) - 1), label="byte")
    bit = data.draw(st.integers(0, 7), label="bit")
    raw[index] ^= 1 << bit
    tampered = base64.urlsafe_b64encode(bytes(raw)).decode()
    assert unseal(tampered, parent_token=parent, child_id="child-1") is None


@given(tokens, tokens, st.data())
def test_truncated_or_extended_sealed_bytes_give_none(
    child: str, parent: str, data: st.DataObject
) -> None:
    sealed = seal(child, parent_token=parent, child_id="child-1")
    raw = base64.urlsafe_b64decode(sealed)
    cut = data.draw(st.integers(0, len(raw) - 1), label="cut")
    extra = data.draw(st.binary(min_size=1, max_size=8), label="extra")
    for variant in (raw[:cut], raw + extra):
        text = base64.urlsafe_b64encode(variant).decode()
        assert unseal(text, parent_token=parent, child_id="child-1") is None


@given(any_text, any_text, any_text)
def test_unseal_never_raises_on_arbitrary_strings(sealed: str, parent: str, child_id: str) -> None:
    assert unseal(sealed, parent_token=parent, child_id=child_id) is None


@pytest.mark.parametrize(
    "sealed", ["", "=", "====", "A", "AAAA", "not base64!", "\x00" * 10, "é" * 20, "\ud800"]
)
def test_unseal_returns_none_on_garbage(sealed: str) -> None:
    assert unseal(sealed, parent_token=generate(), child_id="child-1") is None
