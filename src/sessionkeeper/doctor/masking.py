"""How the doctor shows values it does not control.

- A secret or a token is named by its fingerprint: the first 8 hex characters of its SHA-256
  (the project's log convention, :func:`sessionkeeper.logs.fingerprint`). Two outputs can be
  compared ("is the API's secret the one the server signs with?"); nothing can be replayed.
- Text read from a token or an env file (a claim, a URL) is truncated and stripped of control
  characters before it reaches a terminal: a claim is attacker-controlled, and an escape
  sequence in it must not repaint the operator's screen.
"""

from __future__ import annotations

from typing import Any

from sessionkeeper.logs import fingerprint

_MAX_SHOWN = 200


def masked(value: str) -> str:
    """``fp 1a2b3c4d, 40 chars``: enough to tell two values apart, nothing to replay."""
    return f"fp {fingerprint(value)}, {len(value)} chars"


def printable(value: Any, limit: int = _MAX_SHOWN) -> str:
    """``value`` as display text: control characters escaped, at most ``limit`` characters."""
    text = value if isinstance(value, str) else repr(value)
    clean = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"
