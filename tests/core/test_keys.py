"""Protects signing keys: one algorithm per key, kid in every token, JWKS without secrets."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from sessionkeeper.core.keys import (
    MIN_HMAC_SECRET_BYTES,
    Algorithm,
    KeyMaterialError,
    KeySet,
    SigningKey,
)

SECRET = b"k" * MIN_HMAC_SECRET_BYTES
CLAIMS: dict[str, Any] = {"sub": "user-1", "aud": "authenticated", "exp": 4_000_000_000}


def make_key(alg: Algorithm) -> SigningKey:
    if alg == "HS256":
        return SigningKey.from_secret(SECRET)
    return SigningKey.generate(alg)


def pkcs8(private_key: Any) -> str:
    pem: bytes = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem.decode()


@pytest.fixture(scope="module")
def es_key() -> SigningKey:
    return SigningKey.generate("ES256")


@pytest.fixture(scope="module")
def rs_key() -> SigningKey:
    return SigningKey.generate("RS256")


@pytest.fixture(scope="module")
def hs_key() -> SigningKey:
    return SigningKey.from_secret(SECRET)


# Sign and verify --------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "RS256", "HS256"])
def test_sign_verify_round_trip(alg: Algorithm) -> None:
    key = make_key(alg)
    token = key.sign(CLAIMS)
    decoded = jwt.decode(token, key.verification_key(), algorithms=[alg], audience="authenticated")
    assert decoded == CLAIMS


@pytest.mark.parametrize("alg", ["ES256", "RS256", "HS256"])
def test_header_names_kid_alg_and_typ(alg: Algorithm) -> None:
    key = make_key(alg)
    header = jwt.get_unverified_header(key.sign(CLAIMS))
    assert header == {"alg": alg, "typ": "JWT", "kid": key.kid}


def test_signature_does_not_verify_under_another_key() -> None:
    key, other = SigningKey.generate("ES256"), SigningKey.generate("ES256")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            key.sign(CLAIMS),
            other.verification_key(),
            algorithms=["ES256"],
            audience="authenticated",
        )


def test_es256_signature_is_raw_r_s_of_64_bytes(es_key: SigningKey) -> None:
    signature = es_key.sign(CLAIMS).split(".")[2]
    assert len(base64.urlsafe_b64decode(signature + "==")) == 64  # JWS r||s, not DER


def test_generated_keys_have_the_right_material() -> None:
    es, rs = SigningKey.generate("ES256"), SigningKey.generate("RS256")
    assert isinstance(es.material, ec.EllipticCurvePrivateKey)
    assert isinstance(es.material.curve, ec.SECP256R1)
    assert isinstance(rs.material, rsa.RSAPrivateKey)
    assert rs.material.key_size >= 2048
    assert es.kid != rs.kid
    assert not es.is_hmac and not rs.is_hmac


def test_generate_keeps_a_given_kid() -> None:
    assert SigningKey.generate("ES256", kid="my-kid").kid == "my-kid"


def test_generate_refuses_hs256() -> None:
    with pytest.raises(KeyMaterialError):
        SigningKey.generate("HS256")


# HMAC secrets -----------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 16, MIN_HMAC_SECRET_BYTES - 1])
def test_short_hs256_secret_refused(length: int) -> None:
    with pytest.raises(KeyMaterialError, match="at least 32 bytes"):
        SigningKey.from_secret(b"s" * length)


def test_hs256_secret_length_counts_utf8_bytes_not_characters() -> None:
    assert SigningKey.from_secret("é" * 16).is_hmac  # 16 characters, 32 bytes
    with pytest.raises(KeyMaterialError):
        SigningKey.from_secret("é" * 15)  # 30 bytes


def test_hs256_kid_is_derived_from_the_secret() -> None:
    a, b = SigningKey.from_secret(SECRET), SigningKey.from_secret(SECRET.decode())
    assert a.kid == b.kid  # every instance configured with the secret agrees
    assert a.kid.startswith("hs-")
    assert SigningKey.from_secret(b"z" * 32).kid != a.kid
    assert SECRET.decode() not in a.kid


# JWKS -------------------------------------------------------------------------------------------


def test_jwks_lists_public_ec_and_rsa_keys_and_never_hmac(
    es_key: SigningKey, rs_key: SigningKey, hs_key: SigningKey
) -> None:
    keys = KeySet(es_key, [rs_key, hs_key])
    jwks = keys.jwks()
    by_kid = {jwk["kid"]: jwk for jwk in jwks["keys"]}
    assert set(by_kid) == {es_key.kid, rs_key.kid}

    ec_jwk, rsa_jwk = by_kid[es_key.kid], by_kid[rs_key.kid]
    for jwk, alg in ((ec_jwk, "ES256"), (rsa_jwk, "RS256")):
        assert jwk["alg"] == alg
        assert jwk["use"] == "sig"
        assert jwk["key_ops"] == ["verify"]
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(jwk)  # nothing private
    assert ec_jwk["kty"] == "EC"
    assert ec_jwk["crv"] == "P-256"
    assert {"x", "y"} <= set(ec_jwk)
    assert rsa_jwk["kty"] == "RSA"
    assert {"n", "e"} <= set(rsa_jwk)

    serialized = keys.jwks_json()
    assert json.loads(serialized) == jwks
    assert base64.b64encode(SECRET).decode() not in serialized.decode()
    assert base64.urlsafe_b64encode(SECRET).decode().rstrip("=") not in serialized.decode()


def test_hmac_only_keyset_publishes_nothing(hs_key: SigningKey) -> None:
    assert hs_key.public_jwk() is None
    assert KeySet(hs_key).jwks() == {"keys": []}


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_published_jwk_verifies_tokens(alg: Algorithm) -> None:
    key = make_key(alg)
    jwk = key.public_jwk()
    assert jwk is not None
    public = jwt.PyJWK.from_dict(jwk)
    decoded = jwt.decode(key.sign(CLAIMS), public, algorithms=[alg], audience="authenticated")
    assert decoded["sub"] == "user-1"


# Key set ----------------------------------------------------------------------------------------


def test_keyset_signs_with_active_and_keeps_published_keys(
    es_key: SigningKey, rs_key: SigningKey
) -> None:
    keys = KeySet(rs_key, [es_key])
    assert jwt.get_unverified_header(keys.sign(CLAIMS))["kid"] == rs_key.kid
    assert keys.get(es_key.kid) is es_key
    assert keys.get(rs_key.kid) is rs_key
    assert keys.get("nope") is None
    assert {k.kid for k in keys.keys} == {es_key.kid, rs_key.kid}


def test_keyset_active_key_wins_over_published_with_same_kid(es_key: SigningKey) -> None:
    stale = SigningKey.generate("ES256", kid=es_key.kid)
    keys = KeySet(es_key, [stale])
    assert keys.get(es_key.kid) is es_key
    assert len(keys.keys) == 1


# Storage form -----------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "RS256", "HS256"])
def test_export_load_round_trip_verifies_old_tokens(alg: Algorithm) -> None:
    key = make_key(alg)
    old_token = key.sign(CLAIMS)
    loaded = SigningKey.load(key.kid, key.alg, key.export())
    assert (loaded.kid, loaded.alg, loaded.is_hmac) == (key.kid, key.alg, key.is_hmac)
    decoded = jwt.decode(
        old_token, loaded.verification_key(), algorithms=[alg], audience="authenticated"
    )
    assert decoded == CLAIMS
    # and the other way round: the reloaded key signs tokens the original accepts
    again = jwt.decode(
        loaded.sign(CLAIMS), key.verification_key(), algorithms=[alg], audience="authenticated"
    )
    assert again == CLAIMS


def test_exported_private_key_is_unencrypted_pkcs8(es_key: SigningKey) -> None:
    assert es_key.export().startswith("-----BEGIN PRIVATE KEY-----")


def test_load_keeps_a_kid_other_than_the_derived_one(hs_key: SigningKey) -> None:
    loaded = SigningKey.load("configured-kid", "HS256", hs_key.export())
    assert loaded.kid == "configured-kid"


def test_load_refuses_unknown_algorithm(es_key: SigningKey) -> None:
    for alg in ("PS256", "ES384", "none", "", "es256"):
        with pytest.raises(KeyMaterialError, match="unknown algorithm"):
            SigningKey.load("k", alg, es_key.export())


@pytest.mark.parametrize(
    ("alg", "material"),
    [
        ("RS256", "ES256"),  # EC material under RS256
        ("ES256", "RS256"),  # RSA material under ES256
        ("ES256", "Ed25519"),
        ("RS256", "Ed25519"),
    ],
)
def test_load_refuses_material_of_another_algorithm(alg: str, material: str) -> None:
    private: Any
    if material == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif material == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        private = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(KeyMaterialError, match="does not hold"):
        SigningKey.load("k", alg, pkcs8(private))


def test_load_refuses_short_hmac_secret() -> None:
    with pytest.raises(KeyMaterialError):
        SigningKey.load("k", "HS256", base64.b64encode(b"short").decode())


def test_load_refuses_ec_key_on_another_curve() -> None:
    p384 = pkcs8(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(KeyMaterialError):
        SigningKey.load("k", "ES256", p384)


@pytest.mark.parametrize(
    ("alg", "exported"),
    [
        ("ES256", base64.b64encode(SECRET).decode()),  # an HS256 secret filed under ES256
        ("RS256", "not a pem"),
        ("HS256", "!!! not base64"),
    ],
)
def test_load_refuses_malformed_material_with_key_material_error(alg: str, exported: str) -> None:
    with pytest.raises(KeyMaterialError):
        SigningKey.load("k", alg, exported)


def test_load_refuses_malformed_material_somehow() -> None:
    """Whatever the exception type, malformed material is never turned into a key."""
    for alg, exported in (("ES256", base64.b64encode(SECRET).decode()), ("RS256", "x")):
        with pytest.raises((KeyMaterialError, ValueError)):
            SigningKey.load("k", alg, exported)


def test_secrets_never_appear_in_a_repr() -> None:
    secret = b"a-very-secret-hmac-key-of-32-bytes!!"
    assert secret.decode() not in repr(SigningKey.from_secret(secret))
    es = SigningKey.generate("ES256")
    assert "PRIVATE" not in repr(es)
    assert "material" not in repr(es)
