"""Protects logging: stable 8-hex fingerprints instead of secrets, one JSON object per line."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys

from hypothesis import given
from hypothesis import strategies as st

from sessionkeeper.logs import JsonFormatter, KeyValueFormatter, configure, fields, fingerprint

HEX8 = re.compile(r"[0-9a-f]{8}")


def record(message: str = "refresh granted", **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("sessionkeeper.test")
    return logger.makeRecord(
        logger.name, logging.INFO, __file__, 1, message, (), None, extra=extra or None
    )


# fingerprint ------------------------------------------------------------------------------------


def test_fingerprint_is_8_hex_chars_of_sha256() -> None:
    token = "y3Jb4o9Jq6_2mWb2-2Xm1bS7Bq1hXl9kQ0Hc4e0qv3M"
    fp = fingerprint(token)
    assert HEX8.fullmatch(fp)
    assert fp == hashlib.sha256(token.encode()).hexdigest()[:8]
    assert token[:8] not in fp


def test_fingerprint_is_stable_and_same_for_str_and_bytes() -> None:
    assert fingerprint("secret") == fingerprint("secret") == fingerprint(b"secret")
    assert fingerprint("secret") == "2bb80d53"


def test_fingerprint_distinguishes_inputs() -> None:
    assert len({fingerprint(f"token-{i}") for i in range(1000)}) > 990


@given(st.text() | st.binary())
def test_fingerprint_of_anything_is_8_hex_chars(secret: str | bytes) -> None:
    fp = fingerprint(secret)
    assert HEX8.fullmatch(fp)
    assert fingerprint(secret) == fp


def test_fingerprint_of_a_lone_surrogate_does_not_raise() -> None:
    assert HEX8.fullmatch(fingerprint("x\ud800@example.com"))


# JsonFormatter ----------------------------------------------------------------------------------


def test_json_formatter_emits_one_object_with_extra_fields() -> None:
    line = JsonFormatter().format(
        record("refresh granted", event="refresh", session_id="s1", tokens_revoked=3)
    )
    assert "\n" not in line
    payload = json.loads(line)
    assert isinstance(payload, dict)
    assert payload["message"] == "refresh granted"
    assert payload["level"] == "info"
    assert payload["logger"] == "sessionkeeper.test"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", payload["time"])
    assert payload["event"] == "refresh"
    assert payload["session_id"] == "s1"
    assert payload["tokens_revoked"] == 3
    # nothing of LogRecord's own plumbing leaks in
    assert not {"args", "msg", "pathname", "lineno", "levelno", "exc_info"} & set(payload)


def test_json_formatter_interpolates_arguments() -> None:
    logger = logging.getLogger("sessionkeeper.test")
    rec = logger.makeRecord(logger.name, logging.WARNING, __file__, 1, "%d keys", (3,), None)
    payload = json.loads(JsonFormatter().format(rec))
    assert payload["message"] == "3 keys"
    assert payload["level"] == "warning"


def test_json_formatter_survives_values_json_cannot_encode() -> None:
    payload = json.loads(JsonFormatter().format(record("x", when={1, 2}, obj=object())))
    assert payload["when"] == "{1, 2}"
    assert payload["obj"].startswith("<object object")


def test_json_formatter_keeps_newlines_inside_one_line() -> None:
    line = JsonFormatter().format(record("line one\nline two", note="a\nb"))
    assert "\n" not in line
    assert json.loads(line)["message"] == "line one\nline two"


def test_json_formatter_includes_exceptions() -> None:
    try:
        raise RuntimeError("store went away")
    except RuntimeError:
        exc_info = sys.exc_info()
    logger = logging.getLogger("sessionkeeper.test")
    rec = logger.makeRecord(logger.name, logging.ERROR, __file__, 1, "boom", (), exc_info)
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    payload = json.loads(line)
    assert "RuntimeError: store went away" in payload["exc"]


def test_fields_are_only_the_extras() -> None:
    assert fields(record("x", event="e", ip="203.0.113.7")) == {"event": "e", "ip": "203.0.113.7"}
    assert fields(record("x")) == {}


def test_key_value_formatter_appends_json_encoded_fields() -> None:
    line = KeyValueFormatter("%(levelname)s %(message)s").format(
        record("refresh granted", event="refresh", n=2)
    )
    assert line == 'INFO refresh granted event="refresh" n=2'


def test_configure_installs_one_json_handler() -> None:
    logger = logging.getLogger("sessionkeeper")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        configure("warning", json_lines=True)
        configure("debug", json_lines=True)  # idempotent: still one handler
        assert len(logger.handlers) == 1
        assert isinstance(logger.handlers[0].formatter, JsonFormatter)
        assert logger.level == logging.DEBUG
        assert logger.propagate is False
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]
