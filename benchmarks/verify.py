"""Microseconds per access-token verification: sessionkeeper's guard beside PyJWT, joserfc and
the raw ``cryptography`` floor, all measured in one run.

What is measured, for HS256, ES256 and RS256 (one contract-shaped token each, ~700 bytes):

* ``floor``      -- the signature check alone with ``cryptography`` / ``hmac`` (ES256: verifying
                    a DER signature prepared in advance), no parsing at all;
* ``decode``     -- stdlib base64url-decoding the three segments and ``json.loads`` of header
                    and claims: the parsing any verifier must do;
* ``guard``      -- ``Verifier.verify`` with its cache off (every call parses and verifies);
* ``guard cached`` -- ``Verifier.verify`` of a token already verified (the steady state of a
                    client sending the same token until it refreshes);
* ``pyjwt``      -- ``jwt.decode`` with the same checks (alg allow-list, iss, aud, exp/iat with
                    leeway, required claims);
* ``joserfc``    -- ``jwt.decode`` + ``JWTClaimsRegistry.validate`` with the same checks.

Each figure is the median over ``--repetitions`` timed batches (``timeit``); ratios are taken per
repetition, then their median reported. Targets (from issue 4): uncached ES256 within 1.3x of
``floor + decode``; cached <= 1 us. The exit status is 1 if a target is missed (only in a full
run: ``--quick`` is a smoke run and its figures are noisy).

    .venv/bin/python benchmarks/verify.py             # full run, ~1 minute
    .venv/bin/python benchmarks/verify.py --quick     # smoke run, a few seconds
    .venv/bin/python benchmarks/verify.py --json      # the same figures as one JSON object
"""

from __future__ import annotations

import argparse
import base64
import hmac
import json
import os
import platform
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from sessionkeeper.core.keys import SigningKey
from sessionkeeper.guard import StaticKeys, Verifier, key_from_jwk, key_from_secret

ISSUER = "https://bench.example/auth/v1"
SECRET = "benchmark-shared-secret-of-at-least-32-bytes!"
ALGS = ("HS256", "ES256", "RS256")
ES256_TARGET = 1.3
CACHED_TARGET_US = 1.0


def contract_claims(now: int) -> dict[str, Any]:
    return {
        "iss": ISSUER,
        "sub": "0b7c5d2e-4f6a-4b8c-9d0e-1f2a3b4c5d6e",
        "aud": "authenticated",
        "exp": now + 3600,
        "iat": now,
        "email": "ada@example.com",
        "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {},
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": now}],
        "session_id": "7f1e2d3c-4b5a-4968-8776-655443322110",
        "is_anonymous": False,
    }


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


class Case:
    """Everything one algorithm needs: a token and a callable per contender."""

    def __init__(self, alg: str, now: int) -> None:
        self.alg = alg
        claims = contract_claims(now)
        if alg == "HS256":
            self.token = pyjwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": "hs"})
            our_key = key_from_secret(SECRET, kid="hs")
            pyjwt_key: Any = SECRET.encode()
            jose_key: Any = OctKey.import_key(SECRET.encode())
        else:
            signing = SigningKey.generate(alg, kid=alg.lower())  # type: ignore[arg-type]
            self.token = signing.sign(claims)
            jwk = signing.public_jwk()
            assert jwk is not None
            our_key = key_from_jwk(jwk)
            pyjwt_key = signing.verification_key()
            jose_key = (ECKey if alg == "ES256" else RSAKey).import_key(jwk)
        keys = StaticKeys([our_key])
        self.uncached = Verifier(keys, issuers=[ISSUER], cache_entries=0)
        self.cached = Verifier(keys, issuers=[ISSUER])
        self.cached.verify(self.token)
        self._pyjwt_key = pyjwt_key
        self._jose_key = jose_key
        self._registry = jose_jwt.JWTClaimsRegistry(
            leeway=30,
            iss={"essential": True, "value": ISSUER},
            aud={"essential": True, "value": "authenticated"},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
        )
        head, payload, sig = self.token.split(".")
        self._signing_input = f"{head}.{payload}".encode()
        self._signature = _b64(sig)
        self.floor = self._floor(signing_key=None if alg == "HS256" else pyjwt_key)

    def _floor(self, signing_key: Any) -> Callable[[], object]:
        message, signature = self._signing_input, self._signature
        if self.alg == "HS256":
            secret = SECRET.encode()
            return lambda: hmac.compare_digest(hmac.digest(secret, message, "sha256"), signature)
        if self.alg == "ES256":
            assert isinstance(signing_key, ec.EllipticCurvePublicKey)
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            scheme = ec.ECDSA(hashes.SHA256())
            return lambda: signing_key.verify(der, message, scheme)
        assert isinstance(signing_key, rsa.RSAPublicKey)
        pad, sha = padding.PKCS1v15(), hashes.SHA256()
        return lambda: signing_key.verify(signature, message, pad, sha)

    def decode(self) -> object:
        head, payload, sig = self.token.split(".")
        return json.loads(_b64(head)), json.loads(_b64(payload)), _b64(sig)

    def guard(self) -> object:
        return self.uncached.verify(self.token)

    def guard_cached(self) -> object:
        return self.cached.verify(self.token)

    def pyjwt(self) -> object:
        return pyjwt.decode(
            self.token,
            self._pyjwt_key,
            algorithms=[self.alg],
            audience="authenticated",
            issuer=ISSUER,
            leeway=30,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )

    def joserfc(self) -> object:
        token = jose_jwt.decode(self.token, self._jose_key, algorithms=[self.alg])
        self._registry.validate(token.claims)
        return token

    def contenders(self) -> dict[str, Callable[[], object]]:
        return {
            "floor": self.floor,
            "decode": self.decode,
            "guard": self.guard,
            "guard_cached": self.guard_cached,
            "pyjwt": self.pyjwt,
            "joserfc": self.joserfc,
        }


def time_call(fn: Callable[[], object], seconds: float) -> float:
    """Microseconds per call: calibrate a batch of ~``seconds``, then time it once."""
    timer = timeit.Timer(fn)
    number, elapsed = timer.autorange()
    number = max(1, int(number * seconds / max(elapsed, 1e-9)))
    return timer.timeit(number) / number * 1e6


def run(repetitions: int, seconds: float) -> dict[str, Any]:
    now = int(time.time())
    cases = {alg: Case(alg, now) for alg in ALGS}
    runs: dict[str, list[dict[str, float]]] = {alg: [] for alg in ALGS}
    for rep in range(repetitions):
        for alg, case in cases.items():
            figures = {name: time_call(fn, seconds) for name, fn in case.contenders().items()}
            figures["floor_plus_decode"] = figures["floor"] + figures["decode"]
            figures["guard_vs_floor_plus_decode"] = figures["guard"] / figures["floor_plus_decode"]
            figures["pyjwt_vs_guard"] = figures["pyjwt"] / figures["guard"]
            figures["joserfc_vs_guard"] = figures["joserfc"] / figures["guard"]
            runs[alg].append(figures)
        print(f"repetition {rep + 1}/{repetitions} done", file=sys.stderr)
    result: dict[str, Any] = {}
    for alg, series in runs.items():
        result[alg] = {key: statistics.median(r[key] for r in series) for key in series[0]} | {
            "runs": series
        }
    return result


def pinned_core() -> str:
    if hasattr(os, "sched_getaffinity"):
        return ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.3, help="length of one timed batch")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repetition, short")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.quick:
        args.repetitions, args.seconds = 1, 0.02
    started = time.time()
    result = run(args.repetitions, args.seconds)
    es = result["ES256"]
    targets = {
        "es256_uncached_vs_floor_plus_decode": es["guard_vs_floor_plus_decode"],
        "es256_uncached_target": ES256_TARGET,
        "cached_us_max": max(result[a]["guard_cached"] for a in ALGS),
        "cached_target_us": CACHED_TARGET_US,
    }
    met = (
        targets["es256_uncached_vs_floor_plus_decode"] <= ES256_TARGET
        and targets["cached_us_max"] <= CACHED_TARGET_US
    )
    targets["met"] = met
    output = {
        "config": {
            "quick": args.quick,
            "repetitions": args.repetitions,
            "seconds": args.seconds,
            "python": platform.python_version(),
            "cpus": pinned_core(),
            "pyjwt": pyjwt.__version__,
            "wall_seconds": round(time.time() - started, 1),
        },
        "algorithms": result,
        "targets": targets,
    }
    if args.json:
        print(json.dumps(output, indent=2))
    else:
        print_table(output)
    return 0 if met or args.quick else 1


def print_table(output: dict[str, Any]) -> None:
    cols = ("floor", "decode", "guard", "guard_cached", "pyjwt", "joserfc")
    print(f"µs per verification, median of {output['config']['repetitions']} repetitions")
    print(f"{'alg':6}" + "".join(f"{c:>14}" for c in cols) + f"{'guard÷(floor+decode)':>24}")
    for alg, fig in output["algorithms"].items():
        row = "".join(f"{fig[c]:>14.2f}" for c in cols)
        print(f"{alg:6}{row}{fig['guard_vs_floor_plus_decode']:>24.3f}")
    print()
    for alg, fig in output["algorithms"].items():
        print(
            f"{alg}: pyjwt is {fig['pyjwt_vs_guard']:.2f}x the guard, joserfc "
            f"{fig['joserfc_vs_guard']:.2f}x; cached is {fig['guard'] / fig['guard_cached']:.0f}x "
            "faster than uncached"
        )
    t = output["targets"]
    print(
        f"\ntargets: ES256 uncached {t['es256_uncached_vs_floor_plus_decode']:.3f}x of "
        f"floor+decode (<= {ES256_TARGET}); cached max {t['cached_us_max']:.3f} µs "
        f"(<= {CACHED_TARGET_US}) -> {'met' if t['met'] else 'MISSED'}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
