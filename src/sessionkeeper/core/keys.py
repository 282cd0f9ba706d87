"""Signing keys, the key set and JWKS.

A key is bound to exactly one algorithm and carries a ``kid``. The key set signs with one active
key and verifies with every published key, so that rotating the signing key never invalidates
tokens already issued (old keys stay published until retired). HMAC keys are never published.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

Algorithm = Literal["ES256", "RS256", "HS256"]
ALGORITHMS: tuple[Algorithm, ...] = ("ES256", "RS256", "HS256")
MIN_HMAC_SECRET_BYTES = 32  # RFC 7518 §3.2: a key of the same size as the hash output or larger
MIN_RSA_BITS = 2048  # RFC 7518 §3.3

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class KeyMaterialError(Exception):
    """A key could not be built or used (bad material, wrong size, unknown algorithm)."""


def _new_kid() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True)
class SigningKey:
    """One key, bound to one algorithm. ``material`` is a private key object or an HMAC secret."""

    kid: str
    alg: Algorithm
    material: PrivateKey | bytes = field(repr=False)  # a secret: never in a repr or a log

    @classmethod
    def generate(cls, alg: Algorithm, kid: str | None = None) -> SigningKey:
        """A fresh key: P-256 for ES256, RSA-2048 for RS256. HS256 keys come from a secret."""
        if alg == "ES256":
            return cls(kid or _new_kid(), alg, ec.generate_private_key(ec.SECP256R1()))
        if alg == "RS256":
            material = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return cls(kid or _new_kid(), alg, material)
        raise KeyMaterialError("HS256 keys are made from a configured secret, not generated")

    @classmethod
    def from_secret(cls, secret: str | bytes, kid: str | None = None) -> SigningKey:
        """An HS256 key. Refuses secrets shorter than 32 bytes (RFC 7518 §3.2)."""
        raw = secret.encode() if isinstance(secret, str) else secret
        if len(raw) < MIN_HMAC_SECRET_BYTES:
            raise KeyMaterialError(
                f"HS256 secret must be at least {MIN_HMAC_SECRET_BYTES} bytes, got {len(raw)}"
            )
        # A kid derived from the secret lets every instance configured with it agree on the kid.
        derived = "hs-" + hashlib.sha256(b"sessionkeeper kid\x00" + raw).hexdigest()[:12]
        return cls(kid or derived, "HS256", raw)

    @property
    def is_hmac(self) -> bool:
        return isinstance(self.material, bytes)

    def sign(self, claims: Mapping[str, Any]) -> str:
        headers = {"kid": self.kid, "typ": "JWT"}
        return jwt.encode(dict(claims), self.material, algorithm=self.alg, headers=headers)

    def verification_key(self) -> Any:
        if isinstance(self.material, bytes):
            return self.material
        return self.material.public_key()

    def public_jwk(self) -> dict[str, Any] | None:
        """The public JWK, or ``None`` for HMAC keys (a shared secret is never published)."""
        if isinstance(self.material, bytes):
            return None
        if isinstance(self.material, ec.EllipticCurvePrivateKey):
            jwk = ECAlgorithm.to_jwk(self.material.public_key(), as_dict=True)
        else:
            jwk = RSAAlgorithm.to_jwk(self.material.public_key(), as_dict=True)
        jwk.update({"kid": self.kid, "alg": self.alg, "use": "sig", "key_ops": ["verify"]})
        return jwk

    # Storage form: PKCS#8 PEM for private keys, base64 for secrets.
    def export(self) -> str:
        if isinstance(self.material, bytes):
            return base64.b64encode(self.material).decode()
        return self.material.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    @classmethod
    def load(cls, kid: str, alg: str, exported: str) -> SigningKey:
        if alg not in ALGORITHMS:
            raise KeyMaterialError(f"unknown algorithm {alg!r} for key {kid}")
        try:
            if alg == "HS256":
                return cls.from_secret(base64.b64decode(exported, validate=True), kid=kid)
            material = serialization.load_pem_private_key(exported.encode(), password=None)
        except (
            ValueError,
            TypeError,
            UnsupportedAlgorithm,
        ) as exc:  # binascii.Error is a ValueError
            raise KeyMaterialError(f"key {kid}: unreadable {alg} material ({exc})") from None
        if alg == "ES256":
            if not (
                isinstance(material, ec.EllipticCurvePrivateKey)
                and isinstance(material.curve, ec.SECP256R1)
            ):
                raise KeyMaterialError(f"key {kid} does not hold a P-256 key, which ES256 requires")
            return cls(kid, alg, material)
        if not isinstance(material, rsa.RSAPrivateKey) or material.key_size < MIN_RSA_BITS:
            raise KeyMaterialError(
                f"key {kid} does not hold an RSA key of at least {MIN_RSA_BITS} bits"
            )
        return cls(kid, alg, material)


class KeySet:
    """Signs with the active key; verifies with every published key, each bound to its algorithm."""

    def __init__(self, active: SigningKey, published: Iterable[SigningKey] = ()) -> None:
        self.active = active
        self._by_kid: dict[str, SigningKey] = {k.kid: k for k in published}
        self._by_kid[active.kid] = active

    @property
    def keys(self) -> list[SigningKey]:
        return list(self._by_kid.values())

    def get(self, kid: str) -> SigningKey | None:
        return self._by_kid.get(kid)

    def sign(self, claims: Mapping[str, Any]) -> str:
        return self.active.sign(claims)

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        return {"keys": [jwk for k in self.keys if (jwk := k.public_jwk()) is not None]}

    def jwks_json(self) -> bytes:
        return json.dumps(self.jwks(), separators=(",", ":")).encode()
