"""``doctor token``: decoding without trust, each check on its own, the guard's verdict, usage."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionkeeper.doctor.findings import Severity
from sessionkeeper.doctor.keysets import KeySet, secret_env_keys
from sessionkeeper.doctor.timestamps import parse_instant
from sessionkeeper.doctor.token_checks import Expectations, diagnose_token
from sessionkeeper.doctor.tokens import NotATokenError, decode_untrusted
from sessionkeeper.errors import ConfigError
from tests.doctor.conftest import NOW, Materials, doctor
from tests.guard.conftest import JwksServer, es_key, jwks_server  # noqa: F401 - fixtures
from tests.guard.forge import b64, hs256, with_signature

SECRET = "a-test-only-secret-of-more-than-32-bytes"
ISSUER = "https://project.example/auth/v1"


def claims(**overrides: Any) -> dict[str, Any]:
    base = {"iss": ISSUER, "sub": "u1", "aud": "authenticated", "iat": NOW, "exp": NOW + 3600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def check(token: str, *, secret: str = SECRET, **expect: Any) -> dict[str, dict[str, Any]]:
    """The findings of ``token`` against ``secret``, by code."""
    keys = secret_env_keys("S", {"S": secret})
    report = diagnose_token(
        decode_untrusted(token), keys, Expectations(now=NOW, issuer=ISSUER, **expect)
    )
    return {f.code: f.to_dict() for f in report.findings}


def hs(**overrides: Any) -> str:
    return hs256({"alg": "HS256", "typ": "JWT"}, claims(**overrides), SECRET.encode())


def test_a_good_token_has_no_findings() -> None:
    assert check(hs()) == {}


def test_every_problem_is_reported_not_just_the_first() -> None:
    token = hs(iss="https://other.example/auth/v1", aud="anon", exp=NOW - 3600, iat=NOW - 7200)
    found = check(token, secret="another-secret-that-is-long-enough-too")
    assert set(found) == {"bad_signature", "wrong_issuer", "wrong_audience", "expired"}


@pytest.mark.parametrize(
    ("iss", "says"),
    [
        ("https://Project.Example/auth/v1", "differ only in how the host (or port) is written"),
        ("https://project.example:443/auth/v1", "differ only in how the host (or port) is written"),
        ("https://project.example/auth/v1/", "differ only by a trailing slash"),
        ("https://project.example", "same server, different path"),
        ("http://project.example/auth/v1", "different scheme"),
    ],
)
def test_wrong_issuer_says_how_the_issuers_differ(iss: str, says: str) -> None:
    found = check(hs(iss=iss))
    assert set(found) == {"wrong_issuer"}
    assert says in found["wrong_issuer"]["message"]


def test_expired_inside_the_leeway_is_a_warning() -> None:
    found = check(hs(exp=NOW - 10, iat=NOW - 3610))
    assert found["expired_within_leeway"]["severity"] == Severity.WARNING
    assert "20 s" in found["expired_within_leeway"]["message"]


def test_clock_skew_inside_the_leeway_is_a_warning_beyond_it_a_refusal() -> None:
    assert check(hs(iat=NOW + 20))["clock_skew"]["details"]["clock_skew_seconds"] == 20
    assert set(check(hs(iat=NOW + 20), leeway=10)) == {"not_yet_valid"}
    assert set(check(hs(nbf=NOW + 600))) == {"not_yet_valid"}


def test_alg_none_and_algorithm_confusion() -> None:
    none = with_signature({"alg": "none"}, claims(), b"")
    assert "unsupported_alg" in check(none)
    materials = Materials()
    es_token = materials.token({"sign": "es:A", "claims": {"iss": ISSUER}})
    found = check(es_token)
    assert set(found) == {"unknown_kid"}
    assert "shared secret" in found["unknown_kid"]["message"]
    assert "--jwks-url" in found["unknown_kid"]["hint"]


def test_an_hs_token_against_an_es_key_of_the_same_kid_is_refused() -> None:
    materials = Materials()
    keys = KeySet("JWKS", (), problem=None)
    jwks = json.loads(materials.jwks("A"))
    from sessionkeeper.guard import keys_from_jwks

    keys = KeySet("JWKS", tuple(keys_from_jwks(jwks)))
    token = hs256({"alg": "HS256", "kid": "A"}, claims(), SECRET.encode())
    report = diagnose_token(decode_untrusted(token), keys, Expectations(now=NOW, issuer=ISSUER))
    assert report.codes() == ["unsupported_alg"]


def test_the_guards_verdict_catches_what_no_check_names() -> None:
    token = hs(sub=42)  # a sub that is not a string: only the verifier's type checks see it
    found = check(token)
    assert set(found) == {"malformed_token"}
    assert "guard refuses" in found["malformed_token"]["message"]


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
def test_a_time_beyond_any_float_is_malformed_not_a_crash(claim: str) -> None:
    found = check(hs(**{claim: 10**400}))
    assert set(found) == {"malformed_token"}
    assert found["malformed_token"]["details"] == {"claim": claim}  # the guard's own verdict
    outcome = doctor(
        "token", "-", "--secret-env", "S", "--issuer", ISSUER, "--now", str(NOW),
        stdin=hs(**{claim: -(10**400)}), env={"S": SECRET},
    )  # fmt: skip
    assert outcome.exit_code == 1 and "malformed_token" in outcome.stdout


def test_header_problems_are_malformed_token() -> None:
    for header in ({"alg": "HS256", "crit": ["x"]}, {"alg": "HS256", "jku": "https://x"},
                   {"alg": "HS256", "typ": "id_token"}):  # fmt: skip
        token = hs256(header, claims(), SECRET.encode())
        assert "malformed_token" in check(token), header


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no token given"),
        ("   ", "no token given"),
        ("opaque-refresh-token", "a refresh token?"),
        ("a.b", "not three segments"),
        ("sb_publishable_abcdef", "Supabase API key"),
        (f"{b64(b'{}')}.{b64(b'[1]')}.", "not a JSON object"),
        ("x" * 20_000, "oversize"),
    ],
)
def test_what_is_not_a_token(text: str, message: str) -> None:
    with pytest.raises(NotATokenError) as error:
        decode_untrusted(text)
    assert message in str(error.value)


def test_pasted_forms_are_cleaned() -> None:
    token = hs()
    for pasted in (f"Bearer {token}", f'"{token}"', f"  {token}\n", f"bearer '{token}'"):
        assert decode_untrusted(pasted).raw == token


# Properties ---------------------------------------------------------------------------------

SEGMENT = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/.!", max_size=60
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.builds("{}.{}.{}".format, SEGMENT, SEGMENT, SEGMENT)))
def test_the_decoder_never_raises_anything_but_not_a_token(text: str) -> None:
    try:
        decoded = decode_untrusted(text)
    except NotATokenError as exc:
        message = str(exc)
    else:
        assert isinstance(decoded.claims, dict)
        return
    assert message.startswith(("not a JWT", "no token given", "this is a Supabase API key"))


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**308, max_value=10**400)  # beyond any float
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
CLAIM_NAMES = st.sampled_from(["iss", "sub", "aud", "exp", "iat", "nbf", "role", "ref", "email"])


@settings(max_examples=300, deadline=None)
@given(
    header=st.dictionaries(
        st.sampled_from(["alg", "kid", "typ", "crit", "x"]), JSON_VALUES, max_size=4
    ),
    payload=st.dictionaries(CLAIM_NAMES | st.text(max_size=5), JSON_VALUES, max_size=8),
)
def test_diagnosis_never_crashes_whatever_the_token_says(
    header: dict[str, Any], payload: dict[str, Any]
) -> None:
    token = hs256(header, payload, SECRET.encode())
    keys = secret_env_keys("S", {"S": SECRET})
    report = diagnose_token(decode_untrusted(token), keys, Expectations(now=NOW, issuer=ISSUER))
    for finding in report.findings:
        assert finding.code and finding.message and finding.hint
    json.dumps(report.to_dict())


# The command ---------------------------------------------------------------------------------


def test_a_token_can_be_an_argument_and_the_time_iso(monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = doctor(
        "token", f"Bearer {hs()}", "--secret-env", "S", "--issuer", ISSUER,
        "--now", "2027-01-15T08:00:00Z", "--json", env={"S": SECRET},
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.stdout
    assert outcome.json()["healthy"] is True


def test_a_jwks_url_is_fetched(jwks_server: JwksServer, es_key: Any) -> None:  # noqa: F811
    token = es_key.sign(claims())
    args = ["token", "-", "--jwks-url", jwks_server.url, "--issuer", ISSUER, "--now", str(NOW)]
    outcome = doctor(*args, "--json", stdin=token)
    assert outcome.exit_code == 0, outcome.stdout
    jwks_server.mode = "500"
    outcome = doctor(*args, "--json", stdin=token)
    assert outcome.exit_code == 1
    (finding,) = outcome.json()["findings"]
    assert finding["code"] == "keys_unavailable" and "HTTP 500" in finding["message"]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["token", "-"], {}, "give exactly one key source"),
        (
            ["token", "-", "--jwks-file", "a", "--secret-env", "S"],
            {},
            "(got --jwks-file and --secret-env)",
        ),
        (
            ["token", "-", "--secret-env", "NOT_SET_HERE"],
            {},
            "NOT_SET_HERE: the variable is not set",
        ),
        (["token", "-", "--jwks-file", "/no/such/jwks.json"], {}, "/no/such/jwks.json"),
        (
            ["token", "-", "--secret-env", "S", "--now", "soon"],
            {"S": SECRET},
            "--now: expected epoch",
        ),
        (["token", "-", "--jwks-url", "file:///etc/passwd"], {}, "must be an http(s) URL"),
        (["token", "-", "--jwks-url", "http://[::1/jwks"], {}, "--jwks-url is not a valid URL"),
        (["config", "--no-process-env"], {}, "nothing to read"),
        (["config", "--no-process-env", "--env-file", "/no/such/.env"], {}, "cannot read it"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    args: list[str], env: dict[str, str], message: str
) -> None:
    outcome = doctor(*args, stdin=hs(), env=env)
    assert outcome.exit_code == 2, outcome.stdout
    assert outcome.stdout == ""
    assert outcome.stderr.startswith("error: ") and message in outcome.stderr
    assert outcome.stderr.count("\n") == 1 and "Traceback" not in outcome.stderr


def test_garbage_on_stdin_is_a_usage_error() -> None:
    outcome = doctor("token", "-", "--secret-env", "S", stdin="not a token", env={"S": SECRET})
    assert outcome.exit_code == 2
    assert outcome.stderr.startswith("error: not a JWT")


def test_claims_cannot_paint_the_terminal() -> None:
    token = hs(sub="[bold red]boom\x1b[2J", email="\x07bell@example.com")
    outcome = doctor(
        "token", "-", "--secret-env", "S", "--issuer", ISSUER, "--now", str(NOW), "--color",
        stdin=token, env={"S": SECRET},
    )  # fmt: skip
    assert "[bold red]boom\\x1b[2J" in outcome.stdout
    assert "\x1b[2J" not in outcome.stdout and "\x07" not in outcome.stdout


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("1800000000", 1_800_000_000.0),
        ("1800000000.5", 1_800_000_000.5),
        ("2027-01-15T08:00:00Z", 1_800_000_000.0),
        ("2027-01-15T09:00:00+01:00", 1_800_000_000.0),
        ("2027-01-15 08:00", 1_800_000_000.0),
    ],
)
def test_now_is_epoch_or_iso(text: str, epoch: float) -> None:
    assert parse_instant(text) == epoch


@pytest.mark.parametrize("text", ["soon", "nan", "inf", "", "1800000000000", "1e300"])
def test_now_refuses_the_rest(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_instant(text)


def test_now_in_milliseconds_is_a_usage_error_not_an_expired_token() -> None:
    outcome = doctor("token", "-", "--secret-env", "S", "--now", str(NOW * 1000), stdin=hs(),
                     env={"S": SECRET})  # fmt: skip
    assert outcome.exit_code == 2 and outcome.stdout == ""
    assert outcome.stderr.startswith("error: --now: ") and "milliseconds" in outcome.stderr
