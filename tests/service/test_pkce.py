"""The PKCE rules of ``service.pkce``: challenge parsing as GoTrue does it, verifier checks
(hypothesis), and the grant's refusals with an injected clock."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionkeeper.errors import AuthError
from sessionkeeper.service.pkce import (
    FLOW_STATE_LIFETIME,
    Challenge,
    challenge_of,
    hash_code,
    parse_challenge,
    password_flow,
    pkce_grant,
    start_flow,
    verifier_matches,
)
from tests.conftest import PASSWORD, AppHarness

UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
verifiers = st.text(alphabet=UNRESERVED, min_size=43, max_size=128)


def rfc_s256(verifier: str) -> str:
    """RFC 7636 §4.2, written out here rather than taken from the code under test."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def test_rfc7636_appendix_b_vector() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert challenge_of(verifier, "s256") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@settings(max_examples=200)
@given(verifier=verifiers, method=st.sampled_from(["s256", "S256", "plain", "PLAIN", "Plain"]))
def test_any_valid_verifier_round_trips(verifier: str, method: str) -> None:
    sent = rfc_s256(verifier) if method.lower() == "s256" else verifier
    challenge = parse_challenge(sent, method)
    assert challenge.method == method.lower()
    assert verifier_matches(challenge, verifier)


@settings(max_examples=200)
@given(verifier=verifiers, other=st.text(max_size=200), method=st.sampled_from(["s256", "plain"]))
def test_any_other_verifier_is_refused(verifier: str, other: str, method: str) -> None:
    challenge = parse_challenge(challenge_of(verifier, method), method)
    if other != verifier:
        assert not verifier_matches(challenge, other)


@given(
    st.text(max_size=200).filter(lambda s: not (43 <= len(s) <= 128 and set(s) <= set(UNRESERVED)))
)
def test_a_challenge_outside_rfc7636_is_validation_failed(challenge: str) -> None:
    with pytest.raises(AuthError) as info:
        parse_challenge(challenge, "s256")
    assert info.value.code == "validation_failed"


@pytest.mark.parametrize(
    ("challenge", "method", "message"),
    [
        ("x" * 43, None, "requires code_challenge_method and code_challenge"),
        (None, "s256", "requires code_challenge_method and code_challenge"),
        ("x" * 43, "S512", "method not supported"),
        ("x" * 42, "plain", "between 43 and 128"),
        ("x" * 129, "plain", "between 43 and 128"),
        ("x" * 42 + "/", "plain", "alphanumeric"),
        (123, "plain", "requires"),
    ],
)
def test_challenge_refusals(challenge: object, method: object, message: str) -> None:
    with pytest.raises(AuthError) as info:
        parse_challenge(challenge, method)
    assert info.value.code == "validation_failed"
    assert message in info.value.message


def test_the_stored_code_is_a_hash() -> None:
    assert hash_code("abc") == hashlib.sha256(b"abc").hexdigest()


# The grant, with the app's own service context and a manual clock --------------------------

VERIFIER = "verifier-" + "x" * 60


def _flow(app: AppHarness, email: str, method: str = "s256") -> str:
    return password_flow(
        app.ctx,
        email=email,
        password=PASSWORD,
        code_challenge=challenge_of(VERIFIER, method),
        method=method,
        redirect_to="/done",
    )


def _refusal(fn: Callable[[], object]) -> str:
    with pytest.raises(AuthError) as info:
        fn()
    return info.value.code


async def test_grant_refusals_in_gotrue_order(app_client: AppHarness) -> None:
    email = (await app_client.signup())["user"]["email"]
    ctx = app_client.ctx
    code = _flow(app_client, email)
    # wrong verifier: refused, and the code still works for the right one (GoTrue keeps it)
    assert _refusal(lambda: pkce_grant(ctx, auth_code=code, code_verifier="y" * 60)) == (
        "bad_code_verifier"
    )
    issued = pkce_grant(ctx, auth_code=code, code_verifier=VERIFIER)
    assert issued.user.email == email
    # reused
    assert _refusal(lambda: pkce_grant(ctx, auth_code=code, code_verifier=VERIFIER)) == (
        "flow_state_not_found"
    )
    # unknown
    assert _refusal(lambda: pkce_grant(ctx, auth_code="nope", code_verifier=VERIFIER)) == (
        "flow_state_not_found"
    )
    # missing or not strings
    for auth_code, verifier in [(None, VERIFIER), (code, ""), ("", ""), (1, VERIFIER)]:
        assert _refusal(
            lambda a=auth_code, v=verifier: pkce_grant(ctx, auth_code=a, code_verifier=v)
        ) == ("validation_failed")


async def test_expiry_is_300_seconds_by_the_clock(app_client: AppHarness) -> None:
    email = (await app_client.signup())["user"]["email"]
    ctx = app_client.ctx
    early, late = _flow(app_client, email, "plain"), _flow(app_client, email)
    app_client.clock.advance(FLOW_STATE_LIFETIME - 0.001)
    assert pkce_grant(ctx, auth_code=early, code_verifier=VERIFIER).user.email == email
    app_client.clock.advance(0.001)
    # expired beats a wrong verifier (GoTrue checks expiry first), and stays expired
    for verifier in ("wrong", VERIFIER):
        assert _refusal(lambda v=verifier: pkce_grant(ctx, auth_code=late, code_verifier=v)) == (
            "flow_state_expired"
        )


async def test_the_session_is_a_new_password_sign_in(app_client: AppHarness) -> None:
    signed_up = await app_client.signup()
    app_client.clock.advance(5)
    code = _flow(app_client, signed_up["user"]["email"])
    issued = pkce_grant(app_client.ctx, auth_code=code, code_verifier=VERIFIER)
    with app_client.store.transaction(write=False) as tx:
        user = tx.user_by_id(issued.user.id)
    assert user is not None and user.last_sign_in_at == app_client.clock.now()
    r = await app_client.client.get(
        "/auth/v1/user", headers={"Authorization": f"Bearer {issued.access_token}"}
    )
    assert r.status_code == 200
    import jwt

    claims = jwt.decode(issued.access_token, options={"verify_signature": False})
    assert claims["amr"] == [{"method": "password", "timestamp": int(app_client.clock.now())}]
    assert (
        claims["session_id"]
        != jwt.decode(signed_up["access_token"], options={"verify_signature": False})["session_id"]
    )


async def test_wrong_password_gives_no_flow_state(app_client: AppHarness) -> None:
    email = (await app_client.signup())["user"]["email"]
    challenge = challenge_of(VERIFIER, "s256")
    assert (
        _refusal(
            lambda: password_flow(
                app_client.ctx,
                email=email,
                password="wrong password",
                code_challenge=challenge,
                method="s256",
                redirect_to=None,
            )
        )
        == "invalid_credentials"
    )
    with app_client.store.transaction() as tx:
        assert tx.delete_old_flow_states(created_before=1e12, limit=10) == 0


async def test_start_flow_for_a_user_the_caller_authenticated(app_client: AppHarness) -> None:
    user_id = (await app_client.signup())["user"]["id"]
    code = start_flow(
        app_client.ctx,
        user_id=user_id,
        code_challenge=Challenge(challenge_of(VERIFIER, "s256"), "s256").value,
        method="S256",
        redirect_to=None,
    )
    assert pkce_grant(app_client.ctx, auth_code=code, code_verifier=VERIFIER).user.id == user_id
    with pytest.raises(AuthError):
        start_flow(
            app_client.ctx,
            user_id="no-such-user",
            code_challenge=challenge_of(VERIFIER, "plain"),
            method="plain",
            redirect_to=None,
        )


async def test_cleanup_deletes_old_flow_states(app_client: AppHarness) -> None:
    from sessionkeeper.service.cleanup import cleanup

    email = (await app_client.signup())["user"]["email"]
    _flow(app_client, email)
    app_client.clock.advance(3600)
    assert cleanup(app_client.ctx, retention=3600).flow_states == 0
    app_client.clock.advance(1)
    assert cleanup(app_client.ctx, retention=3600).flow_states == 1
