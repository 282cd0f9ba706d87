"""Verification keys: one key, one algorithm, built from a JWK, a PEM or an HMAC secret.

A :class:`VerifyKey` is immutable and carries its precomputed signature check, so the hot path
does a dict lookup by ``kid`` and one call. Loaders refuse material that does not fit the
algorithm it is bound to, JWKs meant for encryption (``use: enc`` / ``key_ops`` without
``verify``), RSA keys under 2048 bits, and secrets that are really public keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from sessionkeeper.errors import ConfigError
from sessionkeeper.guard.algorithms import (
    ALL_ALGORITHMS,
    HMAC_ALGS,
    KeyAlgorithmMismatch,
    SignatureCheck,
    signature_check,
)

log = logging.getLogger("sessionkeeper.guard")

_CURVE_ALG = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}
# Text that marks a "secret" as public-key material: HMAC with a public key is the classic
# algorithm-confusion attack, so such a secret is a configuration error, not a key.
_PUBLIC_KEY_MARKERS = (b"-----BEGIN", b"ssh-", b"ecdsa-sha2-", b"{")


class UnusableKeyError(ValueError):
    """A key could not be built from the given material."""


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """A public key (or HMAC secret) bound to exactly one algorithm."""

    kid: str | None
    alg: str
    check: SignatureCheck = field(repr=False, compare=False)
    #: Identifies the key material (RFC 7638-style members hash), to notice a changed key.
    thumbprint: str = ""


def _b64(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise UnusableKeyError(f"JWK member {name!r} is missing or not a string")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise UnusableKeyError(f"JWK member {name!r} is not base64url") from exc


def _int(value: Any, name: str) -> int:
    return int.from_bytes(_b64(value, name), "big")


def _alg_for_jwk(jwk: Mapping[str, Any], default_rsa_alg: str) -> str:
    kty = jwk.get("kty")
    alg = jwk.get("alg")
    if alg is not None:
        if not isinstance(alg, str) or alg not in ALL_ALGORITHMS:
            raise UnusableKeyError(f"unsupported alg {alg!r}")
        return alg
    if kty == "EC" and jwk.get("crv") in _CURVE_ALG:
        return _CURVE_ALG[jwk["crv"]]
    if kty == "OKP":
        return "EdDSA"
    if kty == "RSA":
        return default_rsa_alg
    if kty == "oct":
        return "HS256"
    raise UnusableKeyError(f"cannot tell the algorithm of a {kty!r} key without 'alg'")


def key_from_jwk(
    jwk: Mapping[str, Any], *, allow_symmetric: bool = False, default_rsa_alg: str = "RS256"
) -> VerifyKey:
    """A :class:`VerifyKey` from one JWK (RFC 7517). Private members are ignored.

    ``allow_symmetric`` is off for keys fetched from a URL: a JWKS endpoint that publishes an
    HMAC secret has leaked it, and anyone could sign with it.
    """
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise UnusableKeyError(f"key is for use {use!r}, not 'sig'")
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise UnusableKeyError("key_ops does not include 'verify'")
    kid = jwk.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise UnusableKeyError("kid is not a string")
    alg = _alg_for_jwk(jwk, default_rsa_alg)
    kty = jwk.get("kty")
    material: Any
    try:
        if kty == "oct":
            if not allow_symmetric:
                raise UnusableKeyError("symmetric keys are not accepted from this source")
            material = _b64(jwk.get("k"), "k")
        elif kty == "RSA":
            material = rsa.RSAPublicNumbers(_int(jwk.get("e"), "e"), _int(jwk.get("n"), "n"))
            material = material.public_key()
        elif kty == "EC":
            crv = jwk.get("crv")
            if crv not in _CURVES:
                raise UnusableKeyError(f"unsupported curve {crv!r}")
            numbers = ec.EllipticCurvePublicNumbers(
                _int(jwk.get("x"), "x"), _int(jwk.get("y"), "y"), _CURVES[crv]
            )
            material = numbers.public_key()  # refuses points not on the curve
        elif kty == "OKP":
            if jwk.get("crv") != "Ed25519":
                raise UnusableKeyError(f"unsupported OKP curve {jwk.get('crv')!r}")
            material = ed25519.Ed25519PublicKey.from_public_bytes(_b64(jwk.get("x"), "x"))
        else:
            raise UnusableKeyError(f"unsupported key type {kty!r}")
        members = {m: jwk[m] for m in ("kty", "crv", "e", "n", "x", "y", "k") if m in jwk}
        thumbprint = hashlib.sha256(json.dumps(members, sort_keys=True).encode()).hexdigest()
        return VerifyKey(kid, alg, signature_check(alg, material), thumbprint)
    except (KeyAlgorithmMismatch, ValueError, UnsupportedAlgorithm) as exc:
        if isinstance(exc, UnusableKeyError):
            raise
        raise UnusableKeyError(str(exc)) from None


def keys_from_jwks(
    jwks: Mapping[str, Any] | str | bytes,
    *,
    allow_symmetric: bool = False,
    default_rsa_alg: str = "RS256",
    source: str = "jwks",
) -> list[VerifyKey]:
    """Every usable key of a JWKS document. Unusable keys are skipped with a warning, so one odd
    key (an encryption key, a future key type) never takes the whole set down."""
    try:
        doc = json.loads(jwks) if isinstance(jwks, str | bytes) else jwks
    except ValueError as exc:
        raise UnusableKeyError(f"{source}: not JSON ({exc})") from None
    entries = doc.get("keys") if isinstance(doc, Mapping) else None
    if not isinstance(entries, list):
        raise UnusableKeyError(f"{source}: not a JWKS (no 'keys' list)")
    keys: list[VerifyKey] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        try:
            key = key_from_jwk(
                entry, allow_symmetric=allow_symmetric, default_rsa_alg=default_rsa_alg
            )
        except UnusableKeyError as exc:
            log.warning(
                "jwks key skipped",
                extra={"source": source, "kid": str(entry.get("kid"))[:64], "why": str(exc)},
            )
        else:
            keys.append(key)
    return keys


def load_jwks_file(path: str | Path, **options: Any) -> list[VerifyKey]:
    """Keys from a JWKS file on disk (read once, at start-up)."""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"guard jwks file {path}: {exc.strerror}") from None
    try:
        keys = keys_from_jwks(text, source=str(path), **options)
    except UnusableKeyError as exc:
        raise ConfigError(f"guard jwks file: {exc}") from None
    if not keys:
        raise ConfigError(f"guard jwks file {path}: no usable key")
    return keys


def key_from_pem(pem: str | bytes, alg: str, kid: str | None = None) -> VerifyKey:
    """A public key in PEM (SubjectPublicKeyInfo, or a certificate's key), bound to ``alg``."""
    data = pem.encode() if isinstance(pem, str) else pem
    if alg not in ALL_ALGORITHMS or alg in HMAC_ALGS:
        raise ConfigError(f"guard pem key: {alg!r} is not a public-key algorithm")
    try:
        if b"CERTIFICATE" in data:
            from cryptography import x509

            public: Any = x509.load_pem_x509_certificate(data).public_key()
        else:
            public = serialization.load_pem_public_key(data)
        return VerifyKey(kid, alg, signature_check(alg, public))
    except (ValueError, UnsupportedAlgorithm, KeyAlgorithmMismatch) as exc:
        raise ConfigError(f"guard pem key ({alg}): {exc}") from None


def key_from_secret(secret: str | bytes, alg: str = "HS256", kid: str | None = None) -> VerifyKey:
    """An HMAC key from a shared secret (Supabase's legacy "JWT secret": used as UTF-8 bytes).

    Refuses secrets shorter than the hash (RFC 7518 §3.2) and secrets that are public-key text
    (PEM, OpenSSH, JWK JSON): configuring one is exactly the key-confusion attack.
    """
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    if alg not in HMAC_ALGS:
        raise ConfigError(f"guard secret: {alg!r} is not an HMAC algorithm")
    if raw.lstrip().startswith(_PUBLIC_KEY_MARKERS):
        raise ConfigError("guard secret: this looks like a public key, not a shared secret")
    try:
        return VerifyKey(kid, alg, signature_check(alg, raw))
    except KeyAlgorithmMismatch as exc:
        raise ConfigError(f"guard secret: {exc}") from None


def by_kid(keys: Iterable[VerifyKey]) -> dict[str | None, VerifyKey]:
    return {k.kid: k for k in keys}
