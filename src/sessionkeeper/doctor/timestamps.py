"""Instants and durations for people: ``--now`` parsing, ISO 8601 output, "4 min 10 s".

Time checks take ``now`` as a parameter (the doctor never sleeps, and tests inject time); the CLI
reads it from ``--now`` as epoch seconds or ISO 8601, and defaults to the wall clock.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from sessionkeeper.errors import ConfigError

#: 9999-12-31T23:59:59Z: a larger epoch is no date (and is usually milliseconds).
_LAST_SECOND = 253_402_300_799


def parse_instant(text: str) -> float:
    """Epoch seconds from ``1800000000``, ``2027-01-15T08:00:00Z`` or ``2027-01-15 08:00``.

    An ISO time without an offset is taken as UTC (tokens carry UTC epochs). Anything else is a
    usage error.
    """
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError(
                f"--now: expected epoch seconds or ISO 8601 (2027-01-15T08:00:00Z), got {text!r}"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if not math.isfinite(seconds):
        raise ConfigError(f"--now: expected a finite number of seconds, got {text!r}")
    if abs(seconds) > _LAST_SECOND:
        raise ConfigError(
            f"--now: {text.strip()} is beyond the year 9999 in seconds; epoch milliseconds "
            "(JavaScript's Date.now())? Divide by 1000"
        )
    return seconds


def iso(epoch: float) -> str:
    """``2027-01-15T08:00:00Z``, or the raw number when it is not a representable date."""
    try:
        return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")
    except (ValueError, OverflowError, OSError):
        return f"{epoch:g}"


def duration(seconds: float) -> str:
    """``45 s``, ``4 min 10 s``, ``2 h 5 min``, ``3 d 4 h``: rounded for reading, not for maths."""
    total = round(abs(seconds))
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def relative(epoch: float, now: float) -> str:
    """``in 4 min 10 s``, ``4 min 10 s ago`` or ``now``."""
    delta = epoch - now
    if abs(delta) < 1:
        return "now"
    return f"in {duration(delta)}" if delta > 0 else f"{duration(delta)} ago"
