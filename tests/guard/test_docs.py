"""docs/guard.md stays true: every reason code is documented with its status."""

from __future__ import annotations

from pathlib import Path

from sessionkeeper.guard import Reason
from sessionkeeper.guard.reasons import FORBIDDEN, UNAVAILABLE

DOC = Path(__file__).resolve().parents[2] / "docs" / "guard.md"


def test_every_reason_code_is_documented() -> None:
    text = DOC.read_text()
    for reason in Reason:
        status = 503 if reason in UNAVAILABLE else 403 if reason in FORBIDDEN else 401
        assert f"| `{reason.value}` | {status} |" in text, reason


def test_documented_cache_bound_is_the_code_bound() -> None:
    from sessionkeeper.guard.cache import DEFAULT_MAX_ENTRIES, MEMORY_BOUND_BYTES

    text = " ".join(DOC.read_text().split())
    assert f"under {MEMORY_BOUND_BYTES // 2**20} MiB" in text
    assert f"{DEFAULT_MAX_ENTRIES:,} entries" in text
