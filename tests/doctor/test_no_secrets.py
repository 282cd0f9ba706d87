"""Acceptance 2: no secret or token is ever printed whole, in any output mode.

Every command runs over every fixture setup (and a live deployment for ``probe``) as text, with
colour forced on and off, and as JSON (with and without ``--color``). Nothing the fixtures
generated as a secret, key or token may appear in stdout or stderr: not whole, and not any
12-character piece of it. A JWT-shaped string may not appear either (the probe's own access
token is one the test never sees).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from tests.doctor.conftest import Materials, Outcome, Setup, doctor, setups
from tests.doctor.live import live_deployment

MODES = (["--no-color"], ["--color"], ["--json"], ["--json", "--color"], [])
WINDOW = 12
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}")


def assert_nothing_leaked(outcome: Outcome, sensitive: Iterable[str]) -> None:
    printed = outcome.stdout + "\n" + outcome.stderr
    for text in (printed, _ANSI.sub("", printed)):
        pieces = {text[i : i + WINDOW] for i in range(len(text) - WINDOW + 1)}
        for value in sensitive:
            assert value not in text
            leaked = [value[i : i + WINDOW] for i in range(len(value) - WINDOW + 1)]
            assert pieces.isdisjoint(leaked), f"a piece of a secret was printed: {value[:4]}…"
        assert not _JWT.search(text), "a JWT was printed"


@pytest.mark.parametrize("mode", MODES, ids=lambda m: " ".join(m) or "auto")
@pytest.mark.parametrize("name", setups())
def test_no_secret_in_any_output(
    name: str, mode: list[str], setup_in: Callable[[str], Setup]
) -> None:
    setup = setup_in(name)
    assert setup.materials.sensitive, "every setup holds something secret"
    outcome = doctor(*setup.args, *mode, stdin=setup.stdin, env=setup.env)
    assert outcome.exit_code in (0, 1), outcome.stderr
    assert_nothing_leaked(outcome, setup.materials.sensitive)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: " ".join(m) or "auto")
def test_probe_prints_neither_password_nor_tokens(mode: list[str], tmp_path: Path) -> None:
    materials = Materials()
    apikey = materials.api_key("anon", "A")
    with live_deployment(
        tmp_path / "live.db", guard_issuer="https://other.example/auth/v1"
    ) as live:
        token = materials.keep(live.access_token())
        sensitive = [*materials.sensitive, live.password]
        signed_in = doctor(
            "probe", live.base_url, "--email", live.email, "--password", live.password,
            "--apikey", apikey, "--endpoint", "/api/hello", *mode,
        )  # fmt: skip
        given = doctor("probe", live.base_url, "--token", "-", *mode, stdin=f"Bearer {token}")
    for outcome in (signed_in, given):
        assert outcome.exit_code == 1  # the API expects another issuer: refusals are reported
        assert_nothing_leaked(outcome, sensitive)


@pytest.mark.parametrize(
    "args",
    [
        ["token", "-", "--jwks-file", "missing.json"],
        ["token", "-", "--secret-env", "UNSET_VARIABLE_FOR_THE_TEST"],
        ["config", "--no-process-env", "--env-file", "broken.env"],
    ],
)
def test_usage_errors_do_not_echo_their_input(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    materials = Materials()
    secret = materials.secret("S")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.env").write_text(f'GOOD=1\nBROKEN {secret}\nQUOTED="{secret}\n')
    outcome = doctor(*args, stdin=f"{secret}.{secret}")
    assert outcome.exit_code == 2
    assert outcome.stderr.startswith("error: ")
    assert_nothing_leaked(outcome, [secret])


@pytest.mark.parametrize("line", ["{key}", "export {key}", "  {key}  # the new key", "{key} :"])
@pytest.mark.parametrize("kind", ["service_role", "sb_secret"])
def test_a_key_pasted_on_a_line_of_its_own_is_not_echoed(
    line: str, kind: str, tmp_path: Path
) -> None:
    materials = Materials()
    key = materials.fill(f"{{{{{kind}:A}}}}")
    path = tmp_path / ".env"
    path.write_text("SUPABASE_URL=https://x.supabase.co\n" + line.format(key=key) + "\n")
    outcome = doctor("config", "--no-process-env", "--env-file", str(path))
    assert outcome.exit_code == 2
    assert outcome.stderr.startswith(f"error: {path}:2: ")
    assert_nothing_leaked(outcome, materials.sensitive)
