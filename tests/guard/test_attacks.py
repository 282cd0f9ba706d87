"""The attacks of security.md (RFC 8725, known CVEs), each refused through the ASGI app."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sessionkeeper.core.keys import SigningKey
from sessionkeeper.errors import ConfigError
from sessionkeeper.guard import SessionGuard
from tests.guard.answers import assert_refused
from tests.guard.conftest import ISSUER, Guarded, bearer, claims, jwks_of
from tests.guard.forge import es256, hs256, with_signature

N256 = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def public_forms(key: SigningKey) -> dict[str, bytes]:
    assert not isinstance(key.material, bytes)
    public = key.material.public_key()
    return {
        "pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk-json": json.dumps(key.public_jwk()).encode(),
        "openssh": public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ),
    }


@pytest.mark.parametrize("form", ["pem", "jwk-json", "openssh"])
@pytest.mark.parametrize("with_kid", [True, False])
async def test_hs256_signed_with_our_public_key_is_refused(
    guarded: Callable[..., Guarded], es_key: SigningKey, form: str, with_kid: bool
) -> None:
    """CVE-2022-29217 / CVE-2024-33663: the public key's bytes used as an HMAC secret."""
    g = guarded()
    header = {"alg": "HS256", "typ": "JWT", **({"kid": "es-1"} if with_kid else {})}
    token = hs256(header, claims(), public_forms(es_key)[form])
    response = await g.client.get("/api/hello", headers=bearer(token))
    assert_refused(response, g, "unsupported_alg")


@pytest.mark.parametrize("form", ["pem", "jwk-json", "openssh"])
def test_a_public_key_is_refused_as_a_secret(es_key: SigningKey, form: str) -> None:
    with pytest.raises(ConfigError, match="public key"):
        SessionGuard(
            lambda *a: None,  # type: ignore[arg-type, return-value]
            issuer=ISSUER,
            secret=public_forms(es_key)[form] + b" padding to 32 bytes or more....",
        )


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", [b"", b"\x00" * 32])
async def test_alg_none_in_any_case(
    guarded: Callable[..., Guarded], alg: str, signature: bytes
) -> None:
    g = guarded(algorithms=["ES256", "HS256", "RS256"])
    token = with_signature({"alg": alg, "kid": "es-1"}, claims(), signature)
    assert_refused(await g.client.get("/api/hello", headers=bearer(token)), g, "unsupported_alg")


@pytest.mark.parametrize("member", ["jwk", "jku", "x5u", "x5c"])
@pytest.mark.parametrize("signer", ["attacker", "ours"])
async def test_a_token_offering_its_own_key_is_refused(
    guarded: Callable[..., Guarded], es_key: SigningKey, member: str, signer: str
) -> None:
    attacker = ec.generate_private_key(ec.SECP256R1())
    offered = {
        "jwk": SigningKey("x", "ES256", attacker).public_jwk(),
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
        "x5c": ["MIIB"],
    }[member]
    key = attacker if signer == "attacker" else es_key.material
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    token = es256({"alg": "ES256", "kid": "es-1", member: offered}, claims(), key)
    g = guarded()
    assert_refused(await g.client.get("/api/hello", headers=bearer(token)), g, "malformed_token")


@pytest.mark.parametrize(
    "kid", ["../../../../dev/null", "/etc/passwd", "es-1/../es-1", "es-1?x=1", "file:///es-1"]
)
async def test_kid_is_a_lookup_key_never_a_path(
    guarded: Callable[..., Guarded], es_key: SigningKey, kid: str
) -> None:
    assert isinstance(es_key.material, ec.EllipticCurvePrivateKey)
    token = es256({"alg": "ES256", "kid": kid}, claims(), es_key.material)
    g = guarded()
    logged = assert_refused(
        await g.client.get("/api/hello", headers=bearer(token)), g, "unknown_kid"
    )
    assert logged["kid"] == kid


@pytest.mark.parametrize(
    ("r", "s"), [(0, 0), (0, 1), (1, 0), (N256, N256), (N256, 1), (N256 - 1, 0)]
)
async def test_psychic_ecdsa_signatures(guarded: Callable[..., Guarded], r: int, s: int) -> None:
    """CVE-2022-21449: r = s = 0 (and other out-of-range values) must never verify."""
    g = guarded()
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    token = with_signature({"alg": "ES256", "kid": "es-1"}, claims(), signature)
    assert_refused(await g.client.get("/api/hello", headers=bearer(token)), g, "bad_signature")


async def test_der_encoded_es256_signature_is_refused(
    guarded: Callable[..., Guarded], es_key: SigningKey
) -> None:
    """JWS uses raw r||s; a DER signature by the right key is still not a JWS signature."""
    assert isinstance(es_key.material, ec.EllipticCurvePrivateKey)
    g = guarded()
    token = es256({"alg": "ES256", "kid": "es-1"}, claims(), es_key.material, der=True)
    assert_refused(await g.client.get("/api/hello", headers=bearer(token)), g, "bad_signature")
    raw = es256({"alg": "ES256", "kid": "es-1"}, claims(), es_key.material)
    assert (await g.client.get("/api/hello", headers=bearer(raw))).status_code == 200


@pytest.mark.parametrize("crit", [["exp"], ["b64"], [], "exp"])
async def test_unknown_crit_is_refused(
    guarded: Callable[..., Guarded], es_key: SigningKey, crit: object
) -> None:
    assert isinstance(es_key.material, ec.EllipticCurvePrivateKey)
    g = guarded()
    token = es256(
        {"alg": "ES256", "kid": "es-1", "crit": crit, "exp": 1}, claims(), es_key.material
    )
    assert_refused(await g.client.get("/api/hello", headers=bearer(token)), g, "malformed_token")


async def test_oversize_token_is_refused_before_decoding(
    guarded: Callable[..., Guarded], es_key: SigningKey
) -> None:
    g = guarded(max_token_length=4096)
    big = es_key.sign(claims(user_metadata={"blob": "x" * 5000}))
    logged = assert_refused(
        await g.client.get("/api/hello", headers=bearer(big)), g, "malformed_token"
    )
    assert logged["length"] == len(big)
    # Not even base64: refused on length alone, no decoding attempted.
    junk = "!" * 5000
    logged = assert_refused(
        await g.client.get("/api/hello", headers=bearer(junk)), g, "malformed_token"
    )
    assert logged["length"] == 5000


async def test_token_signed_by_another_issuers_key(
    guarded: Callable[..., Guarded], other_key: SigningKey
) -> None:
    g = guarded()
    same_kid = other_key.sign(claims(iss="https://other.example/auth/v1"))
    logged = assert_refused(
        await g.client.get("/api/hello", headers=bearer(same_kid)), g, "bad_signature"
    )
    assert logged["token_issuer"] == "https://other.example/auth/v1"
    # Even claiming our issuer, another key's token is not ours.
    forged = other_key.sign(claims())
    assert_refused(await g.client.get("/api/hello", headers=bearer(forged)), g, "bad_signature")


async def test_rs256_key_confusion_with_es256_header(
    guarded: Callable[..., Guarded], es_key: SigningKey, rs_key: SigningKey
) -> None:
    """A key is bound to its algorithm: an RSA key's kid with an ES256 header is refused."""
    g = guarded(jwks=jwks_of(es_key, rs_key))
    assert isinstance(es_key.material, ec.EllipticCurvePrivateKey)
    token = es256({"alg": "ES256", "kid": "rs-1"}, claims(), es_key.material)
    assert_refused(await g.client.get("/api/hello", headers=bearer(token)), g, "unsupported_alg")
    assert (
        await g.client.get("/api/hello", headers=bearer(rs_key.sign(claims())))
    ).status_code == 200


@pytest.mark.parametrize("typ", ["id_token", "refresh+jwt", "JOSE", 7])
async def test_tokens_of_another_type_are_refused(
    guarded: Callable[..., Guarded], es_key: SigningKey, typ: object
) -> None:
    assert isinstance(es_key.material, ec.EllipticCurvePrivateKey)
    g = guarded()
    token = es256({"alg": "ES256", "kid": "es-1", "typ": typ}, claims(), es_key.material)
    assert_refused(await g.client.get("/api/hello", headers=bearer(token)), g, "malformed_token")


async def test_an_opaque_refresh_token_is_not_an_access_token(
    guarded: Callable[..., Guarded],
) -> None:
    g = guarded()
    response = await g.client.get("/api/hello", headers=bearer("v1.Zm9vYmFyYmF6cXV4"))
    assert_refused(response, g, "malformed_token")


async def test_duplicate_claims_are_refused(
    guarded: Callable[..., Guarded], es_key: SigningKey
) -> None:
    """Two parsers must never disagree about ``sub``: duplicate names are malformed."""
    from tests.guard.forge import b64

    assert isinstance(es_key.material, ec.EllipticCurvePrivateKey)
    good = es256({"alg": "ES256", "kid": "es-1"}, claims(), es_key.material)
    head = good.split(".")[0]
    body = json.dumps(claims())[:-1] + ', "sub": "admin"}'
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    signing_input = f"{head}.{b64(body.encode())}"
    r, s = decode_dss_signature(
        es_key.material.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    )
    token = f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
    g = guarded()
    assert_refused(await g.client.get("/api/hello", headers=bearer(token)), g, "malformed_token")


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
async def test_a_time_claim_beyond_floats_is_a_malformed_token_not_a_crash(
    guarded: Callable[..., Guarded], es_key: SigningKey, claim: str
) -> None:
    """``10**400`` is a valid JSON integer that no float holds: validly signed, it must be a
    401 ``malformed_token``, never an OverflowError (a 500)."""
    g = guarded()
    token = es_key.sign({**claims(), claim: 10**400})
    assert_refused(await g.client.get("/api/hello", headers=bearer(token)), g, "malformed_token")
