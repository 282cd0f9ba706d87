"""docs/doctor.md stays true: every finding code documented, the README links the page, and the
sessionkeeper config example (no random keys in it) prints exactly what the page shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sessionkeeper.doctor.findings import CODES, SCHEMA
from tests.doctor.conftest import doctor

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "doctor.md").read_text()


def test_every_finding_code_has_a_row() -> None:
    rows = [line for line in PAGE.splitlines() if line.startswith("| `")]
    documented = {code for row in rows for code in re.findall(r"`([a-z_]+)`", row.split("|")[1])}
    assert set(CODES) <= documented, sorted(set(CODES) - documented)


def test_the_schema_and_the_readme_link() -> None:
    assert f'"{SCHEMA}"' in PAGE
    assert "(docs/doctor.md)" in (ROOT / "README.md").read_text()


def _blocks_after(marker: str) -> tuple[str, str]:
    """The env files (a bash block) and the output (a text block) following ``marker``."""
    rest = PAGE[PAGE.index(marker) :]
    files, output = re.findall(r"```(?:bash|text)\n(.*?)```", rest, flags=re.DOTALL)[:2]
    return files, output


def test_the_sessionkeeper_config_example_is_real_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files, output = _blocks_after("whose CORS list still names")
    for chunk in files.strip().split("\n\n"):
        name = chunk.splitlines()[0].removeprefix("# ").split(" ")[0]
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(chunk + "\n")
    command, *shown = output.rstrip("\n").splitlines()
    args = command.removeprefix("$ sessionkeeper doctor ").split()
    monkeypatch.chdir(tmp_path)
    outcome = doctor(*args, env={"COLUMNS": "100"})
    printed = [line.rstrip() for line in outcome.stdout.rstrip("\n").splitlines()]
    assert [*printed, "$ echo $?", str(outcome.exit_code)] == shown
