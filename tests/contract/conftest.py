"""The contract suite: every test here runs unchanged on each store backend.

SQLite (the embedded default), PostgreSQL, and PostgreSQL with sessions in Redis must give the
same answers to the same requests; a backend that passes this suite can replace another.
"""

from __future__ import annotations

import pytest

from tests.backends import BACKENDS


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name
