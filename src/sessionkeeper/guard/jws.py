"""Strict parsing of a JWS compact serialisation (RFC 7515 §7.1), before any signature work.

Everything here is stdlib: ``binascii`` in strict mode for base64url and ``json`` for the
segments. Strictness is deliberate (RFC 8725 §3): one canonical encoding per token, so that two
parsers can never disagree about what was signed.

- only the base64url alphabet, no padding, no whitespace, no non-zero unused bits;
- header and claims are JSON objects without duplicate names, NaN or Infinity;
- the signature is checked over the exact bytes received (RFC 7515 A.1 headers contain CR LF).
"""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass
from typing import Any

from sessionkeeper.guard.reasons import Reason, Rejection

# base64url -> standard alphabet; '+', '/' and '=' become '!' so that strict mode refuses them.
_TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/!!!")
_PAD = (b"", b"", b"==", b"=")
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# Value of each base64url character, to check the unused low bits of the last one.
_VALUE = {c: i for i, c in enumerate(_ALPHABET)}
_UNUSED_BITS = (0, 0, 0x0F, 0x03)  # indexed by len % 4


class DecodeError(ValueError):
    """A segment is not canonical base64url or not the JSON we expect."""


def b64url_decode(segment: bytes) -> bytes:
    """Decode canonical, unpadded base64url. Raises :class:`DecodeError` on anything else."""
    rest = len(segment) % 4
    if rest == 1:
        raise DecodeError("impossible base64 length")
    if rest and _VALUE.get(segment[-1], 0) & _UNUSED_BITS[rest]:
        raise DecodeError("non-zero unused bits")
    try:
        return binascii.a2b_base64(segment.translate(_TO_STANDARD) + _PAD[rest], strict_mode=True)
    except binascii.Error as exc:
        raise DecodeError(str(exc)) from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise DecodeError("duplicate member name")
    return obj


def _no_constants(name: str) -> Any:
    raise DecodeError(f"{name} is not JSON")


_decoder = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constants)


def json_object(data: bytes) -> dict[str, Any]:
    """A JSON object from UTF-8 bytes, refusing duplicates, NaN/Infinity and other types."""
    try:
        text = data.decode("utf-8")
        value = _decoder.decode(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DecodeError(str(exc)) from None
    if not isinstance(value, dict):
        raise DecodeError("not a JSON object")
    return value


@dataclass(frozen=True, slots=True)
class CompactJWS:
    """The parts of a compact JWS. ``payload`` is still bytes: JWS vectors sign non-JSON too."""

    header: dict[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes


# Header members that offer the verifier a key (or where to fetch one). A verifier that obeyed
# them would let the token choose its own key; we never do, and refuse tokens that try.
KEY_OFFERING_HEADERS = frozenset({"jwk", "jku", "x5u", "x5c"})


def parse_compact(token: str, max_bytes: int) -> CompactJWS:
    """Split and decode a compact JWS; refuse it as malformed (or oversize) before any crypto.

    The size limit is checked first, on the string length, so an oversize token costs nothing.
    """
    if len(token) > max_bytes:
        raise Rejection(Reason.MALFORMED_TOKEN, "oversize token", length=len(token))
    try:
        raw = token.encode("ascii")
    except UnicodeEncodeError:
        raise Rejection(Reason.MALFORMED_TOKEN, "not ASCII") from None
    if raw.count(b".") != 2:
        raise Rejection(Reason.MALFORMED_TOKEN, "not three segments")
    head, body, sig = raw.split(b".")
    if not head:
        raise Rejection(Reason.MALFORMED_TOKEN, "empty header")
    try:
        header = json_object(b64url_decode(head))
        payload = b64url_decode(body)
        signature = b64url_decode(sig)
    except DecodeError as exc:
        raise Rejection(Reason.MALFORMED_TOKEN, str(exc)) from None
    return CompactJWS(header, payload, raw[: len(head) + 1 + len(body)], signature)


def check_header(header: dict[str, Any]) -> tuple[str, str | None]:
    """The ``alg`` and ``kid`` of a header we are willing to process, as plain strings.

    ``crit`` is refused whatever it lists: we implement no extension (RFC 7515 §4.1.11 says a
    recipient must refuse a critical extension it does not understand).
    """
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise Rejection(Reason.MALFORMED_TOKEN, "alg missing or not a string")
    if "crit" in header:
        raise Rejection(Reason.MALFORMED_TOKEN, "crit header not understood")
    offered = KEY_OFFERING_HEADERS.intersection(header)
    if offered:
        raise Rejection(Reason.MALFORMED_TOKEN, "token offers its own key", headers=sorted(offered))
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise Rejection(Reason.MALFORMED_TOKEN, "kid is not a string")
    return alg, kid
