"""Logging helpers: structured fields, a JSON formatter, and token fingerprints.

Tokens and passwords never reach a log line; :func:`fingerprint` gives a short, stable handle
that lets an operator correlate lines without being able to replay anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def fingerprint(secret: str | bytes) -> str:
    """First 8 hex chars of the SHA-256 of ``secret``: enough to correlate, useless to replay."""
    # surrogatepass: a fingerprint must never fail, even for text that is not valid Unicode.
    data = secret.encode("utf-8", "surrogatepass") if isinstance(secret, str) else secret
    return hashlib.sha256(data).hexdigest()[:8]


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields passed with ``extra=`` on a record."""
    return {k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")}


class KeyValueFormatter(logging.Formatter):
    """``time level logger message key=value ...``: readable on a terminal, greppable in a file."""

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extra = " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in fields(record).items())
        return f"{base} {extra}" if extra else base


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update(fields(record))
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure(level: str = "info", json_lines: bool = False) -> None:
    """Install one handler on the ``sessionkeeper`` logger."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else KeyValueFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger("sessionkeeper")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
