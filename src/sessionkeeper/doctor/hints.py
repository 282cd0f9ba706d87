"""A fix hint for every refusal reason of the guard.

The guard's log line (and, with ``diagnostics=True``, its ``X-Auth-Reason`` header) names a
:class:`~sessionkeeper.guard.Reason`; the doctor turns each into the first thing to check. The
wording follows the "what to check" column of docs/guard.md, so the page and the tool agree.
"""

from __future__ import annotations

from sessionkeeper.guard.reasons import Reason

GUARD_HINTS: dict[Reason, str] = {
    Reason.MISSING_TOKEN: (
        "Attach the access token to every call (Authorization: Bearer <access_token>, or the "
        "session cookie when the guard uses cookie transport), also from fetch() and navigations."
    ),
    Reason.MALFORMED_TOKEN: (
        "Send the access token itself, not a refresh token, an ID token or an API key, and check "
        "that nothing truncates or quotes the Authorization header."
    ),
    Reason.UNSUPPORTED_ALG: (
        "Allow the algorithm the issuer signs with (the guard's algorithms=); an HS256 token "
        "checked against a public key is the key-confusion attack and stays refused."
    ),
    Reason.UNKNOWN_KID: (
        "Verify with the keys of the issuer that signed the token: jwks_url must be "
        "<issuer>/.well-known/jwks.json of the project the front end signs in to."
    ),
    Reason.BAD_SIGNATURE: (
        "The key with this kid did not sign the token: verify with the keys (or the JWT secret) "
        "of the project that issued it; a tampered token also lands here."
    ),
    Reason.EXPIRED: (
        "Get a fresh token (refresh or sign in again); clients should refresh before exp. "
        "If the token is brand new, check this machine's clock (NTP)."
    ),
    Reason.NOT_YET_VALID: (
        "The issuer's clock and this machine's disagree: synchronise both with NTP "
        "(timedatectl status / chronyc tracking)."
    ),
    Reason.WRONG_ISSUER: (
        "Give the guard the issuer of the auth server the front end signs in to: "
        "https://<ref>.supabase.co/auth/v1 for Supabase, <base>/auth/v1 for sessionkeeper."
    ),
    Reason.WRONG_AUDIENCE: (
        "Users' access tokens carry aud 'authenticated'; an anon or service_role key is not a "
        "user's token. Otherwise set the guard's audience= to what the issuer writes."
    ),
    Reason.MISSING_CLAIM: (
        "This is not a user's access token from Supabase Auth or sessionkeeper: sign in and send "
        "session.access_token."
    ),
    Reason.SESSION_REVOKED: "The session was logged out or ended: the user signs in again.",
    Reason.KEYS_UNAVAILABLE: (
        "The verifier could not load keys: check that this machine reaches the JWKS URL "
        "(curl <issuer>/.well-known/jwks.json)."
    ),
    Reason.STORE_UNAVAILABLE: (
        "The guard's session-liveness check could not reach the store: check the API's "
        "database (and Redis) connection."
    ),
    Reason.REFRESH_REFUSED: (
        "The session bridge's refresh cookie was refused by the issuer: the session ended "
        "(sign-out, revocation, timebox). If users were active, check that every server shares "
        "one store and the reuse interval is not 0."
    ),
    Reason.ISSUER_UNAVAILABLE: (
        "The guard could not reach the auth server to renew an expired access cookie: check "
        "the bridge's issuer URL from this machine."
    ),
    Reason.ORIGIN_NOT_ALLOWED: (
        "An unsafe request under cookie auth came from an origin not on the allow-list: add "
        "the app's origin to SESSIONKEEPER_ALLOWED_ORIGINS (scheme://host[:port])."
    ),
    Reason.CSRF_HEADER_MISSING: (
        "An unsafe request under cookie auth came without X-SessionKeeper-CSRF: 1: send every "
        "API call through sessionkeeper.js (createApiClient), which adds it."
    ),
}


def guard_hint(reason: str) -> str:
    """The hint for a reason code; a code this version does not know gets a generic pointer."""
    try:
        return GUARD_HINTS[Reason(reason)]
    except ValueError:
        return "See the guard's log line 'request refused' for this reason's details."
