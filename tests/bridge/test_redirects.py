"""Open redirects: ``next`` / ``redirect_to`` only to same-origin paths or allow-listed origins."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessionkeeper.bridge.redirects import safe_redirect
from sessionkeeper.origins import AllowedOrigins, origin

ALLOWED = AllowedOrigins(["https://app.example.com", "http://127.0.0.1:8000"])

ATTACKS = [
    "//evil.example",
    "//evil.example/path",
    "///evil.example",
    "https://evil.example",
    "https://evil.example/",
    "http://evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "%2F%2Fevil.example",
    "/%2F%2Fevil.example",
    "/%2f%2fevil.example",
    "/%5Cevil.example",
    "/%5cevil.example",
    "/%252F%252Fevil.example",
    "%2F%5Cevil.example",
    "HTTPS://evil.example",
    "hTtPs://evil.example",
    "HtTp://evil.example",
    "https:evil.example",
    "https:/evil.example",
    "https://app.example.com@evil.example",
    "https://app.example.com:443@evil.example/",
    "https://evil.example\\@app.example.com",
    "https://evil.example#https://app.example.com",
    "https://app.example.com.evil.example",
    "//app.example.com",  # scheme-relative: not a path, even to an allowed host
    "/\t/evil.example",
    "/\n/evil.example",
    " //evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.example",
    "",
]


@pytest.mark.parametrize("target", ATTACKS)
def test_an_open_redirect_attempt_lands_on_the_root(target: str) -> None:
    assert safe_redirect(target, ALLOWED) == "/"


@pytest.mark.parametrize(
    "target",
    [
        "/",
        "/reports",
        "/reports?id=3&tab=export",
        "/reports#top",
        "/a/b%20c",
        "https://app.example.com/dashboard?x=1",
        "http://127.0.0.1:8000/",
    ],
)
def test_a_same_origin_path_or_an_allowed_origin_is_kept(target: str) -> None:
    assert safe_redirect(target, ALLOWED) == target


def test_none_and_overlong_targets_land_on_the_root() -> None:
    assert safe_redirect(None, ALLOWED) == "/"
    assert safe_redirect("/" + "a" * 5000, ALLOWED) == "/"


def _lands_on_our_origin(result: str) -> bool:
    if result.startswith("/"):
        return not result.startswith("//") and "\\" not in result
    return origin(result) in ALLOWED


@given(st.text(max_size=80))
def test_whatever_the_input_the_result_stays_on_our_origins(target: str) -> None:
    assert _lands_on_our_origin(safe_redirect(target, ALLOWED))


@given(st.text(alphabet="/\\%2F5Cfc.:@evilxample ", max_size=30))
def test_slashes_backslashes_and_encodings_never_escape(target: str) -> None:
    result = safe_redirect(target, ALLOWED)
    assert _lands_on_our_origin(result)
    assert "evil" not in result.split("?", 1)[0].split("/", 3)[2:3] or result.startswith("/")


@given(st.sampled_from(["//evil.example", "/\\evil.example", "https://evil.example"]))
def test_encoded_once_or_twice_is_still_refused(target: str) -> None:
    assert safe_redirect(quote(target, safe=""), ALLOWED) == "/"
    assert safe_redirect(quote(quote(target, safe=""), safe=""), ALLOWED) == "/"
