"""The env-file parser: the dotenv grammar front ends and workers use, and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionkeeper.doctor.envfiles import (
    EnvFileError,
    parse_env,
    process_environment,
    read_env_file,
)

SAMPLE = (
    "\ufeff# a comment\r\n"
    "\r\n"
    "export SUPABASE_URL=https://abc.supabase.co\r\n"
    "SPACED = value with spaces   # and a comment\n"
    'DOUBLE="line one\\nline \\"two\\"\\t\\\\ end" # trailing comment\n'
    "SINGLE='no $escapes\\n here'\n"
    'MULTI="first\n'
    'second"\n'
    "EMPTY=\n"
    "HASH=a#b\n"
    "   INDENTED=yes\n"
    "BLANK_COMMENT= # nothing\n"
    "DOTTED.NAME-1=ok\n"
    "BACKTICK=`tick`\n"
    "SUPABASE_URL=https://override.supabase.co\n"
)


def test_the_grammar() -> None:
    found = {v.name: v.value for v in parse_env(SAMPLE, "sample")}
    assert found == {
        "SUPABASE_URL": "https://override.supabase.co",
        "SPACED": "value with spaces",
        "DOUBLE": 'line one\nline "two"\t\\ end',
        "SINGLE": "no $escapes\\n here",
        "MULTI": "first\nsecond",
        "EMPTY": "",
        "HASH": "a#b",
        "INDENTED": "yes",
        "BLANK_COMMENT": "",
        "DOTTED.NAME-1": "ok",
        "BACKTICK": "tick",
    }


def test_line_numbers_follow_the_file() -> None:
    lines = {v.name: v.line for v in parse_env(SAMPLE, "sample")}
    assert lines["SPACED"] == 4 and lines["MULTI"] == 7 and lines["EMPTY"] == 9


def test_the_last_definition_wins_when_reading_a_file(tmp_path: Path) -> None:
    path = tmp_path / ".env.local"
    path.write_text(SAMPLE, encoding="utf-8")
    source = read_env_file(str(path))
    url = source.get("SUPABASE_URL")
    assert url is not None and url.value == "https://override.supabase.co"
    assert url.where == f"{path}:15"
    assert [v.name for v in source.variables].count("SUPABASE_URL") == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("JUST_A_NAME\n", "sample:1: expected NAME=value (no '=' after the first word)"),
        ("A=1\n=value\n", "sample:2: expected NAME=value"),
        ('A="open\nB=2\n', "sample:1: unterminated quoted value"),
        ("A='x' y\n", "sample:1: unexpected text after the quoted value of A"),
        ("1BAD=x\n", "sample:1: expected NAME=value"),
    ],
)
def test_syntax_errors_name_the_line_never_the_value(text: str, message: str) -> None:
    with pytest.raises(EnvFileError) as error:
        parse_env(text, "sample")
    assert str(error.value) == message


def test_unreadable_files_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(EnvFileError, match="cannot read it"):
        read_env_file(str(tmp_path / "missing.env"))
    binary = tmp_path / "binary.env"
    binary.write_bytes(b"A=\xff\xfe\n")
    with pytest.raises(EnvFileError, match="not UTF-8 text"):
        read_env_file(str(binary))


def test_the_process_environment_is_one_more_source() -> None:
    source = process_environment({"B": "2", "A": "1"})
    assert source.label == "environment"
    assert [(v.name, v.value, v.where) for v in source.variables] == [
        ("A", "1", "environment"),
        ("B", "2", "environment"),
    ]


def test_a_value_never_shows_in_a_repr() -> None:
    (var,) = parse_env("SECRET=hunter2-but-longer\n")
    assert "hunter2" not in repr(var)


# Properties ---------------------------------------------------------------------------------

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True).filter(
    lambda n: n != "export"
)
VALUES = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


def _double_quoted(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("\r", "\\r").replace("\t", "\\t") + '"'


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_or_raises_the_documented_error(text: str) -> None:
    try:
        variables = parse_env(text, "fuzz")
    except EnvFileError as exc:
        message = str(exc)
    else:
        assert all(v.source == "fuzz" and v.line is not None for v in variables)
        return
    assert message.startswith("fuzz:")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(NAMES, VALUES), max_size=8), st.sampled_from(["\n", "\r\n"]))
def test_double_quoted_values_round_trip(pairs: list[tuple[str, str]], newline: str) -> None:
    text = newline.join(f"export {n} = {_double_quoted(v)}  # c" for n, v in pairs)
    assert [(v.name, v.value) for v in parse_env(text)] == pairs


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(NAMES, VALUES.filter(lambda v: "'" not in v)), max_size=8))
def test_single_quoted_values_are_literal(pairs: list[tuple[str, str]]) -> None:
    text = "\n".join(f"{n}='{v}'" for n, v in pairs).replace("\r", "")
    expected = [(n, v.replace("\r", "")) for n, v in pairs]
    assert [(v.name, v.value) for v in parse_env(text)] == expected


PLAIN = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\"'`#"),
    max_size=40,
).map(str.strip)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(NAMES, PLAIN), max_size=8))
def test_unquoted_values_are_trimmed(pairs: list[tuple[str, str]]) -> None:
    text = "\n".join(f"{n}=  {v}  " for n, v in pairs)
    assert [(v.name, v.value) for v in parse_env(text)] == [(n, v.strip(" \t")) for n, v in pairs]
