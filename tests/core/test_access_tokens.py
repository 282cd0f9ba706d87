"""Protects access tokens: the contract's claims; every forged or stale token is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from sessionkeeper.core.access_tokens import (
    AUDIENCE,
    LEEWAY,
    MAX_TOKEN_LENGTH,
    AccessTokenInput,
    InvalidAccessTokenError,
    build_claims,
    peek_kid,
    verify,
)
from sessionkeeper.core.keys import Algorithm, KeySet, SigningKey
from tests.conftest import CONTRACT_CLAIMS

ISSUER = "http://auth.test/auth/v1"
NOW = 1_800_000_000
LIFETIME = 3600
SECRET = b"s" * 32


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def token_input(**changes: Any) -> AccessTokenInput:
    fields: dict[str, Any] = {
        "user_id": "6f1c2b8e-0000-4000-8000-000000000001",
        "email": "ada@example.com",
        "phone": "",
        "session_id": "5e2d9a1f-0000-4000-8000-000000000002",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {"name": "Ada"},
        "amr": [{"method": "password", "timestamp": NOW}],
        "aal": "aal1",
        "is_anonymous": False,
    }
    fields.update(changes)
    return AccessTokenInput(**fields)


def claims(**changes: Any) -> dict[str, Any]:
    result = build_claims(token_input(), issuer=ISSUER, issued_at=NOW, lifetime=LIFETIME)
    result.update(changes)
    return result


@pytest.fixture(scope="module")
def es_key() -> SigningKey:
    return SigningKey.generate("ES256")


@pytest.fixture(scope="module")
def keys(es_key: SigningKey) -> KeySet:
    return KeySet(es_key)


def hs256_token(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{b64json(header)}.{b64json(payload)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def sign_raw(key: SigningKey, payload: dict[str, Any]) -> str:
    """Sign any JSON payload, bypassing PyJWT's claim checks on the encoding side."""
    body = json.dumps(payload).encode()
    headers = {"kid": key.kid, "typ": "JWT"}
    return jwt.api_jws.encode(body, key.material, algorithm=key.alg, headers=headers)


def assert_refused(token: str, keys: KeySet, match: str | None = None, now: float = NOW) -> None:
    with pytest.raises(InvalidAccessTokenError, match=match):
        verify(token, keys, issuer=ISSUER, now=now)


# Claims -----------------------------------------------------------------------------------------


def test_build_claims_has_every_claim_of_the_contract() -> None:
    data = token_input()
    built = build_claims(data, issuer=ISSUER, issued_at=NOW, lifetime=LIFETIME)
    assert set(built) == CONTRACT_CLAIMS
    assert built["iss"] == ISSUER
    assert built["sub"] == data.user_id
    assert built["aud"] == "authenticated"
    assert isinstance(built["aud"], str)  # a string, not a list
    assert built["iat"] == NOW
    assert built["exp"] == NOW + LIFETIME
    assert built["email"] == "ada@example.com"
    assert built["phone"] == ""
    assert built["role"] == "authenticated"
    assert built["aal"] == "aal1"
    assert built["amr"] == [{"method": "password", "timestamp": NOW}]
    assert built["session_id"] == data.session_id
    assert built["is_anonymous"] is False
    assert built["app_metadata"] == {"provider": "email", "providers": ["email"]}
    assert built["user_metadata"] == {"name": "Ada"}


def test_claims_survive_signing_with_json_types_intact(keys: KeySet) -> None:
    built = claims()
    verified = verify(keys.sign(built), keys, issuer=ISSUER, now=NOW)
    assert verified == built
    assert isinstance(verified["exp"], int)
    assert isinstance(verified["iat"], int)


# Accepted tokens --------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "RS256", "HS256"])
def test_verify_accepts_own_tokens_for_every_algorithm(alg: Algorithm) -> None:
    key = SigningKey.from_secret(SECRET) if alg == "HS256" else SigningKey.generate(alg)
    keys = KeySet(key)
    verified = verify(keys.sign(claims()), keys, issuer=ISSUER, now=NOW)
    assert verified["sub"] == token_input().user_id


def test_verify_accepts_tokens_of_a_published_old_key(es_key: SigningKey) -> None:
    old_token = KeySet(es_key).sign(claims())
    rotated = KeySet(SigningKey.generate("ES256"), [es_key])
    assert verify(old_token, rotated, issuer=ISSUER, now=NOW)["sub"] == token_input().user_id


# Time -------------------------------------------------------------------------------------------


def test_verify_uses_the_injected_now_for_expiry(keys: KeySet) -> None:
    token = keys.sign(claims())
    exp = NOW + LIFETIME
    assert verify(token, keys, issuer=ISSUER, now=exp - 0.001)["exp"] == exp
    assert_refused(token, keys, "expired", now=exp)  # no leeway: expiry is exclusive
    assert_refused(token, keys, "expired", now=exp + 1_000_000)


def test_verify_ignores_the_wall_clock(keys: KeySet) -> None:
    """A token that expired long ago on the wall clock is fine at an injected earlier instant."""
    token = keys.sign(claims(iat=1_000, exp=2_000))
    assert verify(token, keys, issuer=ISSUER, now=1_500)["exp"] == 2_000


@pytest.mark.parametrize("exp", ["4000000000", None, [4_000_000_000]])
def test_verify_refuses_non_numeric_exp(es_key: SigningKey, keys: KeySet, exp: Any) -> None:
    assert_refused(sign_raw(es_key, claims(exp=exp)), keys)


@pytest.mark.parametrize("missing", ["exp", "iat", "sub"])
def test_verify_refuses_missing_required_claim(keys: KeySet, missing: str) -> None:
    payload = claims()
    del payload[missing]
    assert_refused(keys.sign(payload), keys)


def test_verify_refuses_non_string_sub(es_key: SigningKey, keys: KeySet) -> None:
    assert_refused(sign_raw(es_key, claims(sub=42)), keys)


# Issuer and audience ----------------------------------------------------------------------------


@pytest.mark.parametrize("iss", ["http://evil.test/auth/v1", ISSUER + "/", "", None])
def test_verify_refuses_wrong_issuer(es_key: SigningKey, keys: KeySet, iss: Any) -> None:
    assert_refused(sign_raw(es_key, claims(iss=iss)), keys)


def test_verify_refuses_missing_issuer(keys: KeySet) -> None:
    payload = claims()
    del payload["iss"]
    assert_refused(keys.sign(payload), keys)


@pytest.mark.parametrize("aud", ["anon", "service_role", "", ["anon"]])
def test_verify_refuses_wrong_audience(keys: KeySet, aud: Any) -> None:
    assert_refused(keys.sign(claims(aud=aud)), keys)


def test_verify_refuses_missing_audience(keys: KeySet) -> None:
    payload = claims()
    del payload["aud"]
    assert_refused(keys.sign(payload), keys)


def test_audience_constant_is_the_contracts() -> None:
    assert AUDIENCE == "authenticated"


# Keys and algorithms ----------------------------------------------------------------------------


def test_verify_refuses_unknown_kid(keys: KeySet) -> None:
    stranger = KeySet(SigningKey.generate("ES256"))
    assert_refused(stranger.sign(claims()), keys, "unknown kid")


def test_verify_refuses_token_without_kid(es_key: SigningKey, keys: KeySet) -> None:
    token = jwt.encode(claims(), es_key.material, algorithm="ES256")  # no kid header
    assert_refused(token, keys, "unknown kid")


@pytest.mark.parametrize("kid", [7, None, ["x"], {"kid": "x"}])
def test_verify_refuses_non_string_kid(es_key: SigningKey, keys: KeySet, kid: Any) -> None:
    _, payload, signature = es_key.sign(claims()).split(".")
    assert_refused(f"{b64json({'alg': 'ES256', 'kid': kid})}.{payload}.{signature}", keys)


def test_verify_refuses_own_kid_signed_by_another_key(es_key: SigningKey, keys: KeySet) -> None:
    impostor = SigningKey.generate("ES256", kid=es_key.kid)
    assert_refused(impostor.sign(claims()), keys)


@pytest.mark.parametrize(
    "encoding",
    [
        serialization.Encoding.PEM,
        serialization.Encoding.DER,
        serialization.Encoding.OpenSSH,
    ],
)
def test_verify_refuses_hs256_signed_with_the_public_key(
    es_key: SigningKey, keys: KeySet, encoding: serialization.Encoding
) -> None:
    """The classic confusion attack: HMAC keyed with the published public key's bytes."""
    assert isinstance(es_key.material, ec.EllipticCurvePrivateKey)
    public = es_key.material.public_key()
    fmt = (
        serialization.PublicFormat.OpenSSH
        if encoding is serialization.Encoding.OpenSSH
        else serialization.PublicFormat.SubjectPublicKeyInfo
    )
    secret = public.public_bytes(encoding, fmt)
    header = {"alg": "HS256", "typ": "JWT", "kid": es_key.kid}
    assert_refused(hs256_token(header, claims(), secret), keys, "algorithm")


def test_verify_refuses_hs256_signed_with_the_public_jwk(es_key: SigningKey, keys: KeySet) -> None:
    jwk = es_key.public_jwk()
    header = {"alg": "HS256", "typ": "JWT", "kid": es_key.kid}
    for secret in (json.dumps(jwk).encode(), keys.jwks_json()):
        assert_refused(hs256_token(header, claims(), secret), keys, "algorithm")


def test_verify_refuses_confusion_when_an_hmac_key_is_also_in_the_set(
    es_key: SigningKey,
) -> None:
    hs_key = SigningKey.from_secret(SECRET)
    mixed = KeySet(hs_key, [es_key])
    assert verify(mixed.sign(claims()), mixed, issuer=ISSUER, now=NOW)["sub"]
    pem = es_key.verification_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # HS256 with the EC kid, keyed with the EC public key
    forged = hs256_token({"alg": "HS256", "kid": es_key.kid}, claims(), pem)
    assert_refused(forged, mixed, "algorithm")
    # HS256 with the HMAC kid, keyed with the EC public key: bad signature
    forged = hs256_token({"alg": "HS256", "kid": hs_key.kid}, claims(), pem)
    assert_refused(forged, mixed, "InvalidSignatureError")
    # the ES256 key's alg claimed on the HMAC kid
    token = es_key.sign(claims())
    _, payload, signature = token.split(".")
    swapped = f"{b64json({'alg': 'ES256', 'kid': hs_key.kid})}.{payload}.{signature}"
    assert_refused(swapped, mixed, "algorithm")


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_verify_refuses_alg_none(es_key: SigningKey, keys: KeySet, alg: str) -> None:
    unsigned = f"{b64json({'alg': alg, 'typ': 'JWT', 'kid': es_key.kid})}.{b64json(claims())}."
    assert_refused(unsigned, keys, "algorithm")


def test_verify_refuses_alg_none_with_a_copied_signature(es_key: SigningKey, keys: KeySet) -> None:
    signature = es_key.sign(claims()).split(".")[2]
    token = f"{b64json({'alg': 'none', 'kid': es_key.kid})}.{b64json(claims())}.{signature}"
    assert_refused(token, keys)


def test_verify_refuses_other_asymmetric_alg_on_an_es256_key(
    es_key: SigningKey, keys: KeySet
) -> None:
    payload, signature = es_key.sign(claims()).split(".")[1:]
    for alg in ("ES384", "RS256", "PS256", "EdDSA"):
        assert_refused(f"{b64json({'alg': alg, 'kid': es_key.kid})}.{payload}.{signature}", keys)


def test_verify_refuses_zero_ecdsa_signature(es_key: SigningKey, keys: KeySet) -> None:
    """'Psychic signatures' (CVE-2022-21449): r = s = 0 must never verify."""
    header, payload, _ = es_key.sign(claims()).split(".")
    assert_refused(f"{header}.{payload}.{b64url(bytes(64))}", keys)


def test_verify_refuses_der_encoded_ecdsa_signature(es_key: SigningKey, keys: KeySet) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.ec import ECDSA

    assert isinstance(es_key.material, ec.EllipticCurvePrivateKey)
    header, payload, _ = es_key.sign(claims()).split(".")
    der = es_key.material.sign(f"{header}.{payload}".encode(), ECDSA(hashes.SHA256()))
    assert_refused(f"{header}.{payload}.{b64url(der)}", keys)


# Tampering and garbage --------------------------------------------------------------------------


def test_verify_refuses_tampered_payload(keys: KeySet) -> None:
    header, _, signature = keys.sign(claims()).split(".")
    forged_payload = b64json(claims(sub="someone-else", role="service_role"))
    assert_refused(f"{header}.{forged_payload}.{signature}", keys, "InvalidSignatureError")


def test_verify_refuses_tampered_header(es_key: SigningKey, keys: KeySet) -> None:
    _, payload, signature = keys.sign(claims()).split(".")
    header = b64json({"alg": "ES256", "typ": "JWT", "kid": es_key.kid, "x": 1})
    assert_refused(f"{header}.{payload}.{signature}", keys, "InvalidSignatureError")


def test_verify_refuses_truncated_signature(keys: KeySet) -> None:
    token = keys.sign(claims())
    assert_refused(token[:-4], keys)


@pytest.mark.parametrize("garbage", ["", "a", "a.b", "a.b.c", "....", "Bearer x", "{}"])
def test_verify_refuses_garbage(keys: KeySet, garbage: str) -> None:
    assert_refused(garbage, keys)


def test_verify_refuses_oversize_token_before_decoding(keys: KeySet) -> None:
    big = keys.sign(claims(user_metadata={"pad": "x" * 20_000}))
    assert len(big) > MAX_TOKEN_LENGTH
    assert_refused(big, keys, "too long")
    # exactly at the limit is not "too long" (it fails later, for another reason)
    with pytest.raises(InvalidAccessTokenError) as info:
        verify("x" * MAX_TOKEN_LENGTH, keys, issuer=ISSUER, now=NOW)
    assert "too long" not in str(info.value)


def test_verify_max_length_is_configurable(keys: KeySet) -> None:
    token = keys.sign(claims())
    with pytest.raises(InvalidAccessTokenError, match="too long"):
        verify(token, keys, issuer=ISSUER, now=NOW, max_length=len(token) - 1)
    assert verify(token, keys, issuer=ISSUER, now=NOW, max_length=len(token))["sub"]


@given(st.text(max_size=300))
def test_verify_only_ever_raises_invalid_access_token(garbage: str) -> None:
    keys = KeySet(SigningKey.from_secret(SECRET))
    with pytest.raises(InvalidAccessTokenError):
        verify(garbage, keys, issuer=ISSUER, now=NOW)


# peek_kid ---------------------------------------------------------------------------------------


def test_peek_kid_reads_the_unverified_kid(es_key: SigningKey, keys: KeySet) -> None:
    assert peek_kid(keys.sign(claims())) == es_key.kid


@pytest.mark.parametrize("kid", [7, None, ["a"], {"a": 1}, True])
def test_peek_kid_returns_none_for_non_string_kid(kid: Any) -> None:
    assert peek_kid(f"{b64json({'alg': 'HS256', 'kid': kid})}.e30.sig") is None


def test_peek_kid_refuses_oversize_input() -> None:
    header = b64json({"alg": "HS256", "kid": "k" * MAX_TOKEN_LENGTH})
    assert peek_kid(f"{header}.e30.sig") is None
    assert peek_kid(f"{b64json({'alg': 'HS256', 'kid': 'k'})}.e30.sig") == "k"


@given(st.text())
def test_peek_kid_never_raises_on_arbitrary_text(text: str) -> None:
    result = peek_kid(text)
    assert result is None or isinstance(result, str)


@given(st.dictionaries(st.text(max_size=5), st.none() | st.integers() | st.text(), max_size=4))
def test_peek_kid_never_raises_on_arbitrary_headers(header: dict[str, Any]) -> None:
    result = peek_kid(f"{b64json(header)}.e30.sig")
    expected = header.get("kid") if isinstance(header.get("kid"), str) else None
    assert result == expected


@pytest.mark.parametrize("text", ["\ud800", "eyJhbGciOiJIUzI1NiJ9.\udfff.x"])
def test_peek_kid_never_raises_on_lone_surrogates(text: str) -> None:
    assert peek_kid(text) is None


def test_verify_honours_nbf_with_leeway(keys: KeySet) -> None:
    token = keys.sign(claims(nbf=NOW + 100))
    assert_refused(token, keys, "nbf", now=NOW + 100 - LEEWAY - 1)
    assert verify(token, keys, issuer=ISSUER, now=NOW + 100 - LEEWAY)["nbf"] == NOW + 100


def test_verify_refuses_iat_in_the_future(keys: KeySet) -> None:
    token = keys.sign(claims(iat=NOW + 600))
    assert_refused(token, keys, "iat", now=NOW)
    assert verify(token, keys, issuer=ISSUER, now=NOW + 600 - LEEWAY)["iat"] == NOW + 600
