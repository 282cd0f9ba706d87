"""Acceptance 1: every broken setup gets the right finding with its hint; healthy ones are clean.

The setups live in fixtures/ (see fixtures/README.md): each says what to run and the exact set
of problem codes (errors and warnings) the doctor must report, plus text its hints must contain.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from sessionkeeper.doctor.findings import PROBLEMS, SCHEMA, Severity
from tests.doctor.conftest import Setup, doctor, setups

BROKEN = [name for name in setups() if not name.startswith("healthy-")]
HEALTHY = [name for name in setups() if name.startswith("healthy-")]


def test_the_fixture_set_covers_the_issue() -> None:
    required = {
        "issuer-mismatch", "expired-token", "clock-skew", "wrong-audience", "unknown-kid",
        "hs-secret-mismatch", "short-secret", "reuse-interval-zero", "rotation-off",
        "origin-not-allowed", "service-key-in-frontend", "anon-key-other-project",
    }  # fmt: skip
    assert required <= set(BROKEN)
    assert len(BROKEN) >= 12 and HEALTHY


@pytest.mark.parametrize("name", setups())
def test_setup_gets_the_right_findings(name: str, setup_in: Callable[[str], Setup]) -> None:
    setup = setup_in(name)
    outcome = doctor(*setup.args, "--json", stdin=setup.stdin, env=setup.env)
    expect = setup.spec["expect"]
    report = outcome.json()
    assert report["schema"] == SCHEMA
    problems = [f["code"] for f in report["findings"] if Severity(f["severity"]) in PROBLEMS]
    # A list, not a set: a problem reported twice (or once more for the wrong variable) fails.
    assert sorted(problems) == sorted(expect["problems"]), report["findings"]
    assert outcome.exit_code == (1 if expect["problems"] else 0), outcome.stderr
    assert report["exit_code"] == outcome.exit_code
    assert report["healthy"] is (not expect["problems"])
    for finding in report["findings"]:
        assert finding["message"] and finding["hint"], finding
    by_code = {f["code"]: f for f in report["findings"]}
    for code, text in expect.get("hint", {}).items():
        assert setup.materials.fill(text) in by_code[code]["hint"], by_code[code]
    for code, text in expect.get("message", {}).items():
        assert setup.materials.fill(text) in by_code[code]["message"], by_code[code]
    for code, details in expect.get("details", {}).items():
        wanted = json.loads(setup.materials.fill(json.dumps(details)))
        assert wanted.items() <= by_code[code]["details"].items(), by_code[code]


@pytest.mark.parametrize("name", BROKEN)
def test_the_text_output_names_the_finding_and_its_fix(
    name: str, setup_in: Callable[[str], Setup]
) -> None:
    setup = setup_in(name)
    outcome = doctor(*setup.args, "--no-color", stdin=setup.stdin, env=setup.env)
    assert outcome.exit_code == 1
    for code in setup.spec["expect"]["problems"]:
        assert code in outcome.stdout
    assert "fix" in outcome.stdout
    assert "problem" in outcome.stdout.splitlines()[-1]


@pytest.mark.parametrize("name", HEALTHY)
def test_a_healthy_setup_says_so(name: str, setup_in: Callable[[str], Setup]) -> None:
    setup = setup_in(name)
    outcome = doctor(*setup.args, "--no-color", stdin=setup.stdin, env=setup.env)
    assert outcome.exit_code == 0, outcome.stdout
    assert outcome.stdout.rstrip().endswith("No problems found.")


def test_clock_skew_is_estimated(setup_in: Callable[[str], Setup]) -> None:
    setup = setup_in("clock-skew")
    report = doctor(*setup.args, "--json", stdin=setup.stdin, env=setup.env).json()
    (finding,) = [f for f in report["findings"] if f["code"] == "not_yet_valid"]
    assert finding["details"]["clock_skew_seconds"] == 120
    assert "2 min" in finding["message"] and "behind" in finding["message"]
