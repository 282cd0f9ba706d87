"""Acceptance 7: no demo source reaches ``/api/`` except through the api client.

The seed incident was an export button that navigated to a protected URL (no Authorization
header, a 401 page, "session expired"). This test reads every source file of the demo's UI and
fails on any way around ``sessionkeeper.js``: a direct fetch / XHR / beacon / socket, a
navigation or link to ``/api``, a form posting there, or an ``/api`` URL anywhere but the api
client's ``baseUrl``. The e2e run checks the same thing from the browser's side (every /api
request carried the client's bearer token).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[2] / "src" / "sessionkeeper" / "demo" / "static"

#: Calls that bypass the api client. `api.fetch(` is the client itself and is allowed.
FORBIDDEN_JS = {
    "a direct fetch": re.compile(r"(?<![\w$])(?:(?:window|globalThis|self)\s*\.\s*)?fetch\s*\("),
    "XMLHttpRequest": re.compile(r"\bXMLHttpRequest\b"),
    "sendBeacon": re.compile(r"\bsendBeacon\b"),
    "EventSource": re.compile(r"\bEventSource\b"),
    "WebSocket": re.compile(r"\bWebSocket\b"),
    "a dynamic import": re.compile(r"\bimport\s*\("),
    "a navigation": re.compile(
        r"\blocation\s*(?:\.\s*(?:href|pathname)\s*=(?!=)|\.\s*(?:assign|replace)\s*\(|=(?!=))"
        r"|\bwindow\s*\.\s*open\s*\(|(?<!dataset)\.\s*(?:href|action|src)\s*=(?!=)"
    ),
}
#: The one place an /api URL may appear: the api client's base URL.
ALLOWED_API_LITERAL = re.compile(r"createApiClient\(\{\s*baseUrl:\s*\"/api\"")
API_LITERAL = re.compile(r"""["'`][^"'`]*/api\b""")


COMMENTS = re.compile(r"/\*.*?\*/|(?<![:\\])//[^\n]*", re.S)


def js_violations(source: str) -> list[str]:
    source = COMMENTS.sub("", source)  # what a comment says is not what the code does
    found = []
    for what, pattern in FORBIDDEN_JS.items():
        for match in pattern.finditer(source):
            if what == "a direct fetch" and source[: match.start()].rstrip().endswith("api."):
                continue
            found.append(f"{what}: {match.group(0)!r}")
    allowed = {m.start() for m in ALLOWED_API_LITERAL.finditer(source)}
    for match in API_LITERAL.finditer(source):
        line_start = source.rfind("\n", 0, match.start()) + 1
        if not any(line_start <= a <= match.start() for a in allowed):
            found.append(f"an /api URL outside the api client: {match.group(0)!r}")
    return found


class _Attributes(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        for name, value in attrs:
            if value and "/api" in value and not name.startswith("data-"):
                self.found.append(f"<{tag} {name}={value!r}> reaches /api without the client")
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}> inline handler (bypasses review)")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts.append(data)


def html_violations(source: str) -> list[str]:
    parser = _Attributes()
    parser.feed(source)
    found = parser.found
    for script in parser.inline_scripts:
        found += js_violations(script)
    return found


def sources() -> list[Path]:
    files = sorted(p for p in STATIC.rglob("*") if p.suffix in (".js", ".mjs", ".html", ".htm"))
    assert files, f"no demo sources under {STATIC}"
    return files


@pytest.mark.parametrize("path", sources(), ids=lambda p: p.name)
def test_demo_source_reaches_the_api_only_through_the_api_client(path: Path) -> None:
    text = path.read_text()
    violations = html_violations(text) if path.suffix.startswith(".htm") else js_violations(text)
    assert violations == [], f"{path.name}: {violations}"


def test_the_app_builds_its_api_client_with_the_api_base_url() -> None:
    assert ALLOWED_API_LITERAL.search((STATIC / "app.js").read_text())


@pytest.mark.parametrize(
    "snippet",
    [
        "const r = await fetch('/api/jobs');",
        "window.fetch(url)",
        "globalThis.fetch(`/api/x`)",
        "new XMLHttpRequest()",
        "navigator.sendBeacon('/api/log', data)",
        "window.location.href = '/api/jobs/export.csv';",
        "location.assign(exportUrl)",
        "location = '/api/x'",
        "window.open('/api/reports/R-01/export.csv')",
        "link.href = `/api/jobs/export.csv`;",
        "const url = '/api/jobs';",
        "new EventSource('/api/stream')",
    ],
)
def test_the_check_catches_each_way_around_the_client(snippet: str) -> None:
    assert js_violations(snippet), snippet


@pytest.mark.parametrize(
    "snippet",
    [
        '<a href="/api/jobs/export.csv">Export</a>',
        '<form action="/api/jobs" method="post"></form>',
        '<button onclick="go()">x</button>',
        "<script>fetch('/api/jobs')</script>",
    ],
)
def test_the_check_catches_html_that_goes_around_the_client(snippet: str) -> None:
    assert html_violations(snippet), snippet


def test_the_check_allows_the_client_itself() -> None:
    assert js_violations('const api = createApiClient({ baseUrl: "/api", tokens: auth });') == []
    assert js_violations("await api.fetch('/jobs'); await api.download(path);") == []
