"""Signature checks for each JWS algorithm, as thin closures over ``cryptography`` and ``hmac``.

No cryptography is written here: HMAC comes from the stdlib (OpenSSL underneath), RSA, ECDSA and
Ed25519 from ``cryptography``. What *is* here is the JWS-specific framing that libraries have got
wrong before, each checked before the primitive runs:

- ECDSA signatures are the raw ``r || s`` of RFC 7518 §3.4, exactly twice the curve size. A DER
  signature, a short or long one, or ``r``/``s`` outside ``[1, n-1]`` (the "psychic signature",
  CVE-2022-21449) is refused without calling OpenSSL.
- RSA signatures must be exactly the modulus length; PSS uses a salt as long as the hash.
- Each verifier is built once per key, binding the key to one algorithm, so a token can never
  make an RSA or EC public key act as an HMAC secret (CVE-2022-29217, CVE-2024-33663).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

#: ``(signing_input, signature) -> valid?``; never raises for a bad signature.
SignatureCheck = Callable[[bytes, bytes], bool]

HMAC_ALGS = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}
RSA_ALGS: dict[str, hashes.HashAlgorithm] = {
    "RS256": hashes.SHA256(),
    "RS384": hashes.SHA384(),
    "RS512": hashes.SHA512(),
}
PSS_ALGS: dict[str, hashes.HashAlgorithm] = {
    "PS256": hashes.SHA256(),
    "PS384": hashes.SHA384(),
    "PS512": hashes.SHA512(),
}
# alg -> (curve class, hash, bytes per coordinate)
EC_ALGS: dict[str, tuple[type[ec.EllipticCurve], type[hashes.HashAlgorithm], int]] = {
    "ES256": (ec.SECP256R1, hashes.SHA256, 32),
    "ES384": (ec.SECP384R1, hashes.SHA384, 48),
    "ES512": (ec.SECP521R1, hashes.SHA512, 66),
}
EDDSA_ALGS = frozenset({"EdDSA", "Ed25519"})  # "Ed25519" is the fully specified name (RFC 9864)
ALL_ALGORITHMS = (
    frozenset(HMAC_ALGS)
    | frozenset(RSA_ALGS)
    | frozenset(PSS_ALGS)
    | frozenset(EC_ALGS)
    | EDDSA_ALGS
)
#: What Supabase Auth (and our own server) sign with; the guard's default allow-list.
DEFAULT_ALGORITHMS = frozenset({"ES256", "RS256", "HS256"})

MIN_RSA_BITS = 2048  # RFC 7518 §3.3
# RFC 7518 §3.2: an HMAC key at least as long as the hash output.
MIN_HMAC_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}

# Group orders, for the r/s range check.
_ORDERS = {
    "ES256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "ES384": int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
        16,
    ),
    "ES512": int(
        "01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA51868783BF2F966B7FCC"
        "0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409",
        16,
    ),
}


class KeyAlgorithmMismatch(ValueError):
    """The key material cannot be used with the algorithm it was bound to."""


def hmac_check(alg: str, secret: bytes) -> SignatureCheck:
    digest = HMAC_ALGS[alg]
    if len(secret) < MIN_HMAC_BYTES[alg]:
        raise KeyAlgorithmMismatch(f"{alg} needs a key of at least {MIN_HMAC_BYTES[alg]} bytes")

    def check(signing_input: bytes, signature: bytes) -> bool:
        return hmac.compare_digest(hmac.digest(secret, signing_input, digest), signature)

    return check


def ec_check(alg: str, key: ec.EllipticCurvePublicKey) -> SignatureCheck:
    curve, hash_cls, size = EC_ALGS[alg]
    if not isinstance(key.curve, curve):
        raise KeyAlgorithmMismatch(f"{alg} needs a {curve.name} key, got {key.curve.name}")
    order = _ORDERS[alg]
    scheme = ec.ECDSA(hash_cls())
    length = 2 * size
    verify = key.verify

    def check(signing_input: bytes, signature: bytes) -> bool:
        if len(signature) != length:  # DER, truncated or padded signatures end here
            return False
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        if not (0 < r < order and 0 < s < order):
            return False
        try:
            verify(encode_dss_signature(r, s), signing_input, scheme)
        except InvalidSignature:
            return False
        return True

    return check


def rsa_check(alg: str, key: rsa.RSAPublicKey) -> SignatureCheck:
    if key.key_size < MIN_RSA_BITS:
        raise KeyAlgorithmMismatch(f"RSA keys must have at least {MIN_RSA_BITS} bits")
    algorithm = RSA_ALGS.get(alg) or PSS_ALGS[alg]
    pad: padding.AsymmetricPadding
    if alg in PSS_ALGS:
        pad = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size)
    else:
        pad = padding.PKCS1v15()
    length = (key.key_size + 7) // 8
    verify = key.verify

    def check(signing_input: bytes, signature: bytes) -> bool:
        if len(signature) != length:
            return False
        try:
            verify(signature, signing_input, pad, algorithm)
        except InvalidSignature:
            return False
        return True

    return check


def eddsa_check(key: ed25519.Ed25519PublicKey) -> SignatureCheck:
    verify = key.verify

    def check(signing_input: bytes, signature: bytes) -> bool:
        if len(signature) != 64:
            return False
        try:
            verify(signature, signing_input)
        except InvalidSignature:
            return False
        return True

    return check


def signature_check(alg: str, material: Any) -> SignatureCheck:
    """The check for ``alg`` with ``material`` (bytes for HMAC, else a public key object).

    Raises :class:`KeyAlgorithmMismatch` when the two do not belong together: an HMAC algorithm
    only ever gets bytes, an asymmetric one only ever gets a public key of the right family.
    """
    if alg in HMAC_ALGS:
        if not isinstance(material, bytes):
            raise KeyAlgorithmMismatch(f"{alg} needs a shared secret")
        return hmac_check(alg, material)
    if alg in EC_ALGS:
        if not isinstance(material, ec.EllipticCurvePublicKey):
            raise KeyAlgorithmMismatch(f"{alg} needs an EC public key")
        return ec_check(alg, material)
    if alg in RSA_ALGS or alg in PSS_ALGS:
        if not isinstance(material, rsa.RSAPublicKey):
            raise KeyAlgorithmMismatch(f"{alg} needs an RSA public key")
        return rsa_check(alg, material)
    if alg in EDDSA_ALGS:
        if not isinstance(material, ed25519.Ed25519PublicKey):
            raise KeyAlgorithmMismatch(f"{alg} needs an Ed25519 public key")
        return eddsa_check(material)
    raise KeyAlgorithmMismatch(f"unsupported algorithm {alg!r}")
