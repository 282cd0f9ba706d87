"""A store in two parts: accounts and keys in SQL, sessions and token families in Redis.

One ``transaction()`` spans both. The SQL transaction opens only when an account or key is
touched (a refresh reads the user once; a logout never does), and commits after Redis's
``MULTI/EXEC``: if Redis refuses (a lock lost, an outage), the SQL part rolls back with it. The
reverse failure — Redis committed, then SQL's commit failing (the database lost at that very
moment) — leaves the Redis half applied: a sign-in's session exists without ``last_sign_in_at``
updated, a sign-up may leave a session whose user was never created (it can never refresh:
``refresh_token_not_found``), and a password change may have ended the other sessions while the
password stayed unchanged (the user signs in again with the old one). None of these grants
access that the rules would refuse; the opposite order could.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from sessionkeeper.clock import Clock
from sessionkeeper.core.ratelimit import Limiter
from sessionkeeper.store.base import Store, Transaction
from sessionkeeper.store.redis_sessions import RedisSessions, RedisTransaction

# Methods of the store protocol answered by the session store; the rest go to SQL.
SESSION_METHODS = frozenset(
    {
        "insert_session",
        "session_by_id",
        "lock_session",
        "update_session",
        "delete_sessions",
        "insert_refresh_token",
        "refresh_token_by_hash",
        "live_child_of",
        "next_token_seq",
        "revoke_token",
        "revoke_session_tokens",
        "delete_ended_sessions",
        "delete_spent_tokens",
    }
)


class SplitTransaction:
    """Routes each protocol method to the part that holds its data."""

    def __init__(self, sessions: RedisTransaction, open_sql: Any) -> None:
        self._sessions = sessions
        self._open_sql = open_sql
        self._sql: Transaction | None = None

    def __getattr__(self, name: str) -> Any:
        if name in SESSION_METHODS:
            return getattr(self._sessions, name)
        if self._sql is None:
            self._sql = self._open_sql()
        return getattr(self._sql, name)


class SplitStore:
    """``Store`` over a SQL store (users, identities, keys) and Redis (sessions)."""

    def __init__(self, sql: Store, sessions: RedisSessions) -> None:
        self.sql = sql
        self.sessions = sessions
        self.url_for_display = f"{sql.url_for_display} + {sessions.url_for_display}"

    def migrate(self) -> list[str]:
        return self.sql.migrate()

    def ping(self) -> None:
        self.sql.ping()
        self.sessions.ping()

    def rate_limiter(self, *, name: str, limit: int, window: float, clock: Clock) -> Limiter:
        """Rate-limit counters in Redis, shared by every instance."""
        from sessionkeeper.store.redis_limits import RedisRateLimiter

        return RedisRateLimiter(
            self.sessions.client,
            name=name,
            limit=limit,
            window=window,
            clock=clock,
            prefix=self.sessions.prefix,
        )

    def dependencies(self) -> dict[str, Any]:
        """Each part, for ``/health`` to say which one is down."""
        return {"database": self.sql, "session_store": self.sessions}

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[SplitTransaction]:
        with ExitStack() as sql_scope:

            def open_sql() -> Transaction:
                return sql_scope.enter_context(self.sql.transaction(write=write))

            # Redis commits when its block exits; the SQL scope (if opened) exits after it.
            with self.sessions.transaction(write=write) as sessions_tx:
                yield SplitTransaction(sessions_tx, open_sql)

    def close(self) -> None:
        self.sessions.close()
        self.sql.close()
