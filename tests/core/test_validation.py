"""Protects input rules: canonical emails, password bounds, metadata; only AuthError escapes."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessionkeeper.core.validation import (
    MAX_EMAIL_LENGTH,
    MAX_METADATA_BYTES,
    MAX_PASSWORD_LENGTH,
    check_strength,
    metadata,
    normalize_email,
    require_password,
)
from sessionkeeper.errors import CATALOGUE, AuthError

# Every code point, lone surrogates included (a JSON body's "\ud800" escape decodes to one).
# st.text drops surrogates even from an explicit alphabet, so join a list of characters.
any_char = st.characters() | st.characters(categories=["Cs"])
any_text = st.lists(any_char, max_size=80).map("".join)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities included: JSON parsers can produce them
    | any_text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)


def outcome(call: Any, value: object) -> Any:
    """The result of ``call(value)``, or the AuthError it raised; any other exception escapes."""
    try:
        return call(value)
    except AuthError as exc:
        return exc


def code_of(call: Any, *args: Any) -> str:
    with pytest.raises(AuthError) as info:
        call(*args)
    assert info.value.status == CATALOGUE[info.value.code].status
    return info.value.code


# Email ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ada@example.com", "ada@example.com"),
        ("Ada@Example.COM", "ada@example.com"),
        ("  ada@example.com\t\n", "ada@example.com"),
        ("Jose\u0301@example.com", "jos\u00e9@example.com"),  # decomposed -> NFC
        ("JOSE\u0301@EXAMPLE.COM", "jos\u00e9@example.com"),
        ("user+tag@sub.example.co.uk", "user+tag@sub.example.co.uk"),
        ("ÜSER@bücher.example", "üser@bücher.example"),
    ],
)
def test_normalize_email(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


def test_normalize_email_composes_to_nfc() -> None:
    result = normalize_email("e\u0301@example.com")
    assert result == "\u00e9@example.com"
    assert unicodedata.is_normalized("NFC", result)


@pytest.mark.parametrize("value", [None, ""])
def test_missing_email_is_validation_failed(value: object) -> None:
    assert code_of(normalize_email, value) == "validation_failed"


@pytest.mark.parametrize("value", [42, 1.5, True, ["a@b.c"], {"email": "a@b.c"}, b"a@b.c"])
def test_non_string_email_is_validation_failed(value: object) -> None:
    assert code_of(normalize_email, value) == "validation_failed"


@pytest.mark.parametrize("value", ["\ud800@example.com", "ada@exa\udfffmple.com"])
def test_email_with_lone_surrogate_is_validation_failed(value: str) -> None:
    assert code_of(normalize_email, value) == "validation_failed"


@pytest.mark.parametrize(
    "value",
    [
        "   ",
        "plainaddress",
        "@example.com",
        "ada@",
        "ada@example",
        "ada@example.",
        "ada@@example.com",
        "ada@exa@mple.com",
        "ada lovelace@example.com",
        "ada@exam ple.com",
        "ada\x00@example.com",
        "ada@example.com\x7f",
        "ada\n@example.com",
        "a" * (MAX_EMAIL_LENGTH - len("@example.com") + 1) + "@example.com",
    ],
)
def test_invalid_email_shapes(value: str) -> None:
    assert code_of(normalize_email, value) == "email_address_invalid"


def test_email_length_limit_is_inclusive() -> None:
    longest = "a" * (MAX_EMAIL_LENGTH - len("@example.com")) + "@example.com"
    assert len(longest) == MAX_EMAIL_LENGTH
    assert normalize_email(longest) == longest


@given(any_text)
def test_normalize_email_returns_str_or_raises_auth_error(text: str) -> None:
    result = outcome(normalize_email, text)
    if isinstance(result, AuthError):
        assert result.code in ("validation_failed", "email_address_invalid")
        return
    assert isinstance(result, str)
    assert len(result) <= MAX_EMAIL_LENGTH
    assert result == result.strip()
    assert result.count("@") == 1


@given(any_text, any_text)
def test_normalize_email_is_idempotent(local: str, domain: str) -> None:
    once = outcome(normalize_email, f"{local}@{domain}.example")
    if isinstance(once, AuthError):
        return
    assert normalize_email(once) == once  # a stored email signs in when typed back as shown


@given(json_values)
def test_normalize_email_on_json_values_returns_str_or_raises_auth_error(value: Any) -> None:
    assert isinstance(outcome(normalize_email, value), str | AuthError)


# Password ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["p", " padded ", "pässwörd 🔑", "x" * MAX_PASSWORD_LENGTH, "\x00ctrl"]
)
def test_require_password_returns_the_password_unchanged(value: str) -> None:
    assert require_password(value) == value


@pytest.mark.parametrize("value", [None, ""])
def test_missing_password_is_validation_failed(value: object) -> None:
    assert code_of(require_password, value) == "validation_failed"


@pytest.mark.parametrize("value", [123, 1.0, False, ["pw"], {"pw": 1}, b"password"])
def test_non_string_password_is_validation_failed(value: object) -> None:
    assert code_of(require_password, value) == "validation_failed"


def test_overlong_password_is_validation_failed() -> None:
    assert code_of(require_password, "x" * (MAX_PASSWORD_LENGTH + 1)) == "validation_failed"


def test_password_with_lone_surrogate_is_validation_failed() -> None:
    assert code_of(require_password, "pass\ud83dword") == "validation_failed"


@given(json_values)
def test_require_password_returns_str_or_raises_auth_error(value: Any) -> None:
    result = outcome(require_password, value)
    if isinstance(result, AuthError):
        assert result.code == "validation_failed"
    else:
        assert result is value


def test_check_strength() -> None:
    check_strength("123456", 6)
    with pytest.raises(AuthError) as info:
        check_strength("12345", 6)
    assert info.value.code == "weak_password"
    assert info.value.status == 422
    assert info.value.extra == {"weak_password": {"reasons": ["length"]}}
    assert "6" in info.value.message


# Metadata ---------------------------------------------------------------------------------------


def test_metadata_absent_is_none() -> None:
    assert metadata(None) is None


@pytest.mark.parametrize("value", [{}, {"name": "Ada", "tags": ["a", 1, None], "n": {"x": 1.5}}])
def test_metadata_object_is_returned(value: dict[str, Any]) -> None:
    assert metadata(value) == value


@pytest.mark.parametrize("value", [[], [1], "str", 1, 1.5, True])
def test_metadata_must_be_an_object(value: object) -> None:
    with pytest.raises(AuthError) as info:
        metadata(value, "data")
    assert info.value.code == "validation_failed"
    assert "data" in info.value.message


@pytest.mark.parametrize(
    "value",
    [
        {"x": float("nan")},
        {"x": [float("inf")]},
        {"x": "\ud800"},
        {"\udc00": 1},
        {"x": 10**5000},  # beyond Python's int-to-str limit
    ],
)
def test_metadata_with_unencodable_content_is_validation_failed(value: dict[str, Any]) -> None:
    assert code_of(metadata, value) == "validation_failed"


def test_metadata_size_limit_is_inclusive_and_counts_the_token_form() -> None:
    overhead = len(json.dumps({"k": ""}, separators=(",", ":")))
    exact = {"k": "x" * (MAX_METADATA_BYTES - overhead)}
    assert metadata(exact) == exact
    assert code_of(metadata, {"k": "x" * (MAX_METADATA_BYTES - overhead + 1)}) == (
        "validation_failed"
    )
    # In the token 'é' is escaped as \u00e9 (six characters): a sixth as many fit.
    escaped = {"k": "é" * ((MAX_METADATA_BYTES - overhead) // 6 + 1)}
    assert code_of(metadata, escaped) == "validation_failed"
    assert metadata({"k": "é" * ((MAX_METADATA_BYTES - overhead) // 6)}) is not None


@given(json_values)
def test_metadata_returns_the_object_none_or_raises_auth_error(value: Any) -> None:
    result = outcome(metadata, value)
    if isinstance(result, AuthError):
        assert result.code == "validation_failed"
    elif value is None:
        assert result is None
    else:
        assert isinstance(value, dict)
        assert result is value


@given(st.dictionaries(any_text, json_values, max_size=5))
def test_metadata_objects_return_themselves_or_raise_auth_error(value: dict[str, Any]) -> None:
    result = outcome(metadata, value)
    if isinstance(result, AuthError):
        assert result.code == "validation_failed"
    else:
        assert result is value
