"""Session cookies: attributes, chunking, stale chunks, reading back what was written."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessionkeeper.bridge.cookies import CHUNK_SIZE, CookieJar, CookiePolicy
from sessionkeeper.guard.reasons import Rejection


def scope(cookie: str = "", *, scheme: str = "http", host: str = "app.test") -> dict[str, Any]:
    headers = [(b"host", host.encode())]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    return {"type": "http", "scheme": scheme, "headers": headers}


def browser(set_cookies: list[str], jar: dict[str, str] | None = None) -> dict[str, str]:
    """What a browser keeps after these Set-Cookie values (Max-Age=0 deletes)."""
    kept = dict(jar or {})
    for value in set_cookies:
        pair, *attributes = value.split("; ")
        name, _, content = pair.partition("=")
        if "Max-Age=0" in attributes:
            kept.pop(name, None)
        else:
            kept[name] = content
    return kept


def header(jar: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in jar.items())


cookie_safe = st.text(
    alphabet=st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."),
    min_size=1,
    max_size=3 * CHUNK_SIZE + 50,
)


@given(access=cookie_safe, refresh=cookie_safe, previous=cookie_safe)
def test_whatever_is_written_reads_back_whole_even_over_an_older_chunked_value(
    access: str, refresh: str, previous: str
) -> None:
    policy = CookiePolicy()
    first = browser(
        policy.session_cookies(scope(), CookieJar(None, None, None), previous, previous)
    )
    old = policy.read(scope(header(first)))
    assert (old.access_token, old.refresh_token) == (previous, previous)
    second = browser(policy.session_cookies(scope(header(first)), old, access, refresh), first)
    jar = policy.read(scope(header(second)))
    assert (jar.access_token, jar.refresh_token) == (access, refresh)


def test_a_long_value_is_split_and_no_chunk_is_over_the_limit() -> None:
    policy = CookiePolicy()
    values = policy.session_cookies(scope(), CookieJar(None, None, None), "a" * 7000, "r")
    names = [v.split("=", 1)[0] for v in values]
    assert names == [
        "sk-access-token.0",
        "sk-access-token.1",
        "sk-access-token.2",
        "sk-refresh-token",
    ]
    assert all(len(v) < 4096 for v in values)


def test_clearing_deletes_every_chunk_the_browser_holds() -> None:
    policy = CookiePolicy()
    jar = policy.read(scope("sk-access-token.0=a; sk-access-token.1=b; sk-refresh-token=r"))
    cleared = policy.clear_cookies(scope(), jar)
    assert sorted(v.split("=", 1)[0] for v in cleared) == [
        "sk-access-token",  # the unchunked name too, whatever the browser holds
        "sk-access-token.0",
        "sk-access-token.1",
        "sk-refresh-token",
    ]
    assert all("Max-Age=0" in v for v in cleared)


def test_every_attribute_of_a_production_cookie() -> None:
    policy = CookiePolicy()
    access, refresh = policy.session_cookies(
        scope(scheme="https"), CookieJar(None, None, None), "a.b.c", "r1"
    )
    assert (
        access
        == "__Host-sk-access-token=a.b.c; Max-Age=34560000; Path=/; HttpOnly; SameSite=Lax; Secure"
    )
    assert (
        refresh
        == "__Host-sk-refresh-token=r1; Max-Age=34560000; Path=/; HttpOnly; SameSite=Lax; Secure"
    )


def test_plain_http_outside_development_still_marks_cookies_secure() -> None:
    policy = CookiePolicy()
    (access, _) = policy.session_cookies(
        scope(host="127.0.0.1:8000"), CookieJar(None, None, None), "a", "r"
    )
    assert access == "sk-access-token=a; Max-Age=34560000; Path=/; HttpOnly; SameSite=Lax; Secure"


def test_development_cookies_drop_secure_only_on_loopback_plain_http() -> None:
    policy = CookiePolicy(insecure_dev_cookies=True)
    empty = CookieJar(None, None, None)
    assert not policy.session_cookies(scope(host="127.0.0.1:8000"), empty, "a", "r")[0].endswith(
        "Secure"
    )
    assert not policy.session_cookies(scope(host="[::1]:8000"), empty, "a", "r")[0].endswith(
        "Secure"
    )
    assert policy.session_cookies(scope(host="app.test"), empty, "a", "r")[0].endswith("Secure")
    assert policy.session_cookies(scope(scheme="https", host="localhost"), empty, "a", "r")[
        0
    ].endswith("Secure")


def test_the_code_verifier_cookie_lives_five_minutes() -> None:
    value = CookiePolicy().verifier_cookie(scope(scheme="https"), "v" * 64)
    attributes = "Max-Age=300; Path=/; HttpOnly; SameSite=Lax; Secure"
    assert value == f"__Host-sk-code-verifier={'v' * 64}; {attributes}"


@pytest.mark.parametrize(
    "cookie",
    ["sk-refresh-token=a; sk-refresh-token=b", "sk-access-token.0=a; sk-access-token.0=b"],
)
def test_a_cookie_sent_twice_is_refused(cookie: str) -> None:
    with pytest.raises(Rejection) as caught:
        CookiePolicy().read(scope(cookie))
    assert caught.value.reason.value == "malformed_token"
    lenient = CookiePolicy().read_lenient(scope(cookie))
    assert lenient.access_token is None and lenient.refresh_token is None


def test_a_value_a_cookie_cannot_carry_is_refused_before_writing() -> None:
    with pytest.raises(ValueError, match="cannot carry"):
        CookiePolicy().session_cookies(scope(), CookieJar(None, None, None), "a;b", "r")
