"""Public test vectors (tests/guard/vectors): each gets the expected verdict.

JWS-level files (RFC 7515 Appendix A, the JOSE cookbook, Wycheproof's JWS cases) go through
``Verifier.verify_signature`` with every algorithm we implement allowed: their payloads are not
JWT claims, so the claims layer is out of scope here (tests/guard/test_reasons.py covers it).
Primitive-level files (Wycheproof ECDSA P1363, RSA PKCS#1, HMAC, Ed25519) go through the
signature checks the verifier builds for each key.

Deviations from a file's stated verdict are listed in DEVIATIONS with why; each is asserted (so
a listed deviation that stops deviating fails too, and the list stays true).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from sessionkeeper.clock import ManualClock
from sessionkeeper.guard import Rejection, StaticKeys, Verifier, key_from_jwk
from sessionkeeper.guard.algorithms import ALL_ALGORITHMS, signature_check
from sessionkeeper.guard.keys import UnusableKeyError

# A copy of the project's shared public vectors, kept beside the test so a clean clone has them
# (their sources and licences are in vectors/README.md); SESSIONKEEPER_VECTORS points elsewhere.
VECTORS = Path(os.environ.get("SESSIONKEEPER_VECTORS", Path(__file__).parent / "vectors"))


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text())
    return data


def verifier_for(jwk: dict[str, Any]) -> Verifier | None:
    """A verifier holding exactly this key, or None when the key is refused at load."""
    try:
        key = key_from_jwk(jwk, allow_symmetric=True)
    except UnusableKeyError:
        return None
    return Verifier(
        StaticKeys([key]),
        issuers=["joe"],
        algorithms=ALL_ALGORITHMS,
        clock=ManualClock(1_300_000_000),  # before RFC 7515's exp=1300819380
    )


def signature_valid(jwk: dict[str, Any], token: str) -> bool:
    verifier = verifier_for(jwk)
    if verifier is None:
        return False
    try:
        verifier.verify_signature(token)
    except Rejection:
        return False
    return True


# -- RFC 7515 Appendix A ---------------------------------------------------------------------

RFC7515 = load("rfc7515_appendix_a.json")["examples"] if VECTORS.is_dir() else []


@pytest.mark.parametrize("example", RFC7515, ids=lambda e: e["section"])
def test_rfc7515_appendix_a(example: dict[str, Any]) -> None:
    valid = signature_valid(example["key"], example["compact"])
    assert valid == (example["expect"] == "valid-signature")


def test_rfc7515_claims_verify_with_an_injected_clock() -> None:
    """A.1 is a real JWT (iss joe, exp 1300819380): with a clock before exp, the claims layer
    gets as far as the audience (A.1 has none), proving the CR LF header bytes verified."""
    example = RFC7515[0]
    verifier = verifier_for(example["key"])
    assert verifier is not None
    with pytest.raises(Rejection) as refused:
        verifier.verify(example["compact"])
    assert refused.value.reason == "missing_claim"


# -- JOSE cookbook (RFC 7520, RFC 8037) ------------------------------------------------------

COOKBOOK = ["jws/4_1.rsa_v15_signature.json", "jws/4_3.ecdsa_signature.json",
            "jws/4_4.hmac-sha2_integrity_protection.json", "curve25519/jws.json"]  # fmt: skip


@pytest.mark.parametrize("name", COOKBOOK)
def test_jose_cookbook(name: str) -> None:
    case = load(f"jose-cookbook/{name}")
    jwk = dict(case["input"]["key"])
    jwk.setdefault("alg", case["input"]["alg"])
    compact = case["output"]["compact"]
    assert signature_valid(jwk, compact)
    # One flipped signature bit must not verify.
    head, payload, sig = compact.split(".")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    assert not signature_valid(jwk, f"{head}.{payload}.{flipped}")


# -- Wycheproof JWS --------------------------------------------------------------------------

# tcId -> why our verdict differs from the file's "valid".
DEVIATIONS = {
    346: "RFC 7520 group: key alg PS256 but the token is PS384; a key is bound to one algorithm",
    350: "same as 346 (with key_ops)",
    347: "RFC 7520 group: key alg 'ES521' is not a JWA algorithm (ES512 is); the key is refused",
    351: "same as 347 (with key_ops)",
    372: "a '?' inside the base64url header: not base64url; strict decoding refuses it",
    373: "a '?' inside the base64url payload: same",
}
# tcId -> why we accept what the file calls "invalid". Both are byte-identical to tcId 357, which
# the same file marks valid: the padding their comments describe is not in the stored token, so
# one string cannot get two verdicts. test_identical_cases_explain_the_deviation checks this.
ACCEPTED_INVALID = {
    367: "invalidBase64Padding: identical to the valid tcId 357 (no padding left in the token)",
    370: "invalidBase64PaddingInPayload: identical to tcId 357 as well",
}


def wycheproof_cases() -> list[tuple[int, dict[str, Any], str, str]]:
    if not VECTORS.is_dir():
        return []
    cases = []
    for group in load("wycheproof/json_web_signature_test.json")["testGroups"]:
        jwk = group.get("public") or group.get("private")
        for test in group["tests"]:
            cases.append((test["tcId"], jwk, test["jws"], test["result"]))
    return cases


@pytest.mark.parametrize(("tc_id", "jwk", "jws", "result"), wycheproof_cases(),
                         ids=lambda v: str(v) if isinstance(v, int) else "")  # fmt: skip
def test_wycheproof_jws(tc_id: int, jwk: dict[str, Any], jws: str, result: str) -> None:
    valid = signature_valid(jwk, jws)
    if tc_id in DEVIATIONS:
        assert result == "valid" and not valid, DEVIATIONS[tc_id]
    elif tc_id in ACCEPTED_INVALID:
        assert result == "invalid" and valid, ACCEPTED_INVALID[tc_id]
    else:
        assert valid == (result == "valid")


def test_identical_cases_explain_the_deviation() -> None:
    tokens = {tc_id: jws for tc_id, _, jws, _ in wycheproof_cases()}
    for tc_id in ACCEPTED_INVALID:
        assert tokens[tc_id] == tokens[357]
    # Padding is refused when it is really there.
    jwk357 = next(jwk for tc_id, jwk, _, _ in wycheproof_cases() if tc_id == 357)
    assert not signature_valid(jwk357, tokens[357] + "=")


def test_wycheproof_covers_every_case() -> None:
    assert (
        len(wycheproof_cases()) == load("wycheproof/json_web_signature_test.json")["numberOfTests"]
    )


# -- Wycheproof primitives -------------------------------------------------------------------


def primitive_cases(name: str) -> list[tuple[int, Any, bytes, bytes, str]]:
    if not VECTORS.is_dir():
        return []
    data = load(f"wycheproof/{name}")
    cases = []
    for group in data["testGroups"]:
        if name.startswith("hmac") and (group["keySize"] != 256 or group["tagSize"] != 256):
            continue  # only this group is HS256
        for t in group["tests"]:
            if name.startswith("hmac"):
                material: Any = bytes.fromhex(t["key"])
                sig = t["tag"]
            else:
                material = serialization.load_pem_public_key(group["publicKeyPem"].encode())
                sig = t["sig"]
            cases.append(
                (t["tcId"], material, bytes.fromhex(t["msg"]), bytes.fromhex(sig), t["result"])
            )
    return cases


PRIMITIVES = {
    "ecdsa_secp256r1_sha256_p1363_test.json": "ES256",
    "rsa_signature_2048_sha256_test.json": "RS256",
    "hmac_sha256_test.json": "HS256",
    "ed25519_test.json": "EdDSA",
}


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_wycheproof_primitive_files(name: str) -> None:
    alg = PRIMITIVES[name]
    cases = primitive_cases(name)
    assert cases
    checks: dict[int, Any] = {}
    wrong = []
    for tc_id, material, msg, sig, result in cases:
        check = checks.setdefault(id(material), signature_check(alg, material))
        valid = check(msg, sig)
        # "acceptable": legacy encodings a strict verifier may refuse; we refuse them.
        if result == "acceptable":
            if valid:
                wrong.append((tc_id, "accepted an 'acceptable' legacy case"))
        elif valid != (result == "valid"):
            wrong.append((tc_id, result))
    assert wrong == []


def test_p1363_r_zero_class_is_invalid() -> None:
    """The README's note: tcIds 11-17 (r = 0 class) must be invalid."""
    cases = {c[0]: c for c in primitive_cases("ecdsa_secp256r1_sha256_p1363_test.json")}
    for tc_id in range(11, 18):
        _, material, msg, sig, result = cases[tc_id]
        assert result == "invalid"
        assert not signature_check("ES256", material)(msg, sig)
