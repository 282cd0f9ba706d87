"""Hand-built tokens for attack tests: any header, any signature (PyJWT refuses to make most of
these, which is the point)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signing_input(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"


def with_signature(header: dict[str, Any], payload: dict[str, Any], signature: bytes) -> str:
    return f"{signing_input(header, payload)}.{b64(signature)}"


def hs256(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    head = signing_input(header, payload)
    return f"{head}.{b64(hmac.new(secret, head.encode(), hashlib.sha256).digest())}"


def es256(
    header: dict[str, Any],
    payload: dict[str, Any],
    key: ec.EllipticCurvePrivateKey,
    der: bool = False,
) -> str:
    head = signing_input(header, payload)
    signature = key.sign(head.encode(), ec.ECDSA(hashes.SHA256()))
    if not der:
        r, s = decode_dss_signature(signature)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{head}.{b64(signature)}"
