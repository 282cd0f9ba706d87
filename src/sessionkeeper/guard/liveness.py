"""Session liveness: refuse access tokens of a session that was logged out, within a window.

An access token stays valid until its ``exp`` (an hour by default) even after its session is
logged out; ASVS 7.4.1 wants logout to end access too. The guard can ask the auth server's store
whether the token's ``session_id`` still exists and is not ended, and caches each answer for
``window`` seconds (default 5): a logged-out session's tokens are refused at most ``window``
seconds later, and a busy session costs one store read per window, not one per request.

:class:`SessionLiveness` is the whole contract (one method), so a deployment can plug in anything
(an HTTP call to the auth server, a Redis lookup). :class:`StoreLiveness` uses only the ``Store``
protocol (``transaction(write=False)`` and ``session_by_id``), so it works unchanged with every
store backend: SQLite, PostgreSQL, and sessions in Redis (``from_url(..., session_store=...)``).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from sessionkeeper.clock import Clock, SystemClock
from sessionkeeper.core.sessions import SessionPolicy, session_invalidity
from sessionkeeper.errors import StoreUnavailableError
from sessionkeeper.guard.principal import Principal
from sessionkeeper.guard.reasons import Reason, Rejection
from sessionkeeper.guard.verifier import Verifier
from sessionkeeper.store.base import Store

DEFAULT_WINDOW = 5.0
DEFAULT_MAX_ENTRIES = 100_000


class SessionLiveness(Protocol):
    async def is_alive(self, session_id: str) -> bool:
        """Whether the session may still be used. Raise ``StoreUnavailableError`` when the
        answer cannot be known (the guard then answers 503, never 401)."""
        ...


class StoreLiveness:
    """Liveness read from a :class:`~sessionkeeper.store.base.Store`, cached for ``window``.

    A session is dead when its row is gone (logout deletes it) or when it has ended by the
    server's rules (``not_after``, a revoked family, and the timebox / inactivity limits of
    ``policy`` when the operator passes the server's policy). Concurrent requests for one session
    share one store read. Store reads run in a worker thread: the store API is synchronous.
    """

    def __init__(
        self,
        store: Store,
        *,
        window: float = DEFAULT_WINDOW,
        policy: SessionPolicy | None = None,
        clock: Clock | None = None,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        if not 0 <= window <= 300:
            raise ValueError("liveness window must be between 0 and 300 seconds")
        self.store = store
        self.window = window
        self.policy = policy or SessionPolicy()
        self.clock = clock or SystemClock()
        self.max_entries = max_entries
        self._answers: dict[str, tuple[bool, float]] = {}
        self._inflight: dict[str, asyncio.Task[bool]] = {}
        self.reads = 0

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        session_store: str | None = None,
        session_store_prefix: str = "sk:",
        **options: Any,
    ) -> StoreLiveness:
        """Open the auth server's store: its ``--database`` URL and, when the server keeps
        sessions in Redis, its ``--session-store`` URL and key prefix (the liveness data is
        there)."""
        from sessionkeeper.store import open_store, with_session_store

        store = open_store(url)
        if session_store is not None:
            store = with_session_store(
                store,
                session_store,
                policy=options.get("policy") or SessionPolicy(),
                retention=7 * 86400.0,  # the guard only reads; TTLs are the server's to set
                prefix=session_store_prefix,
            )
        return cls(store, **options)

    async def is_alive(self, session_id: str) -> bool:
        cached = self._answers.get(session_id)
        if cached is not None and cached[1] > self.clock.now():
            return cached[0]
        task = self._inflight.get(session_id)
        if task is None:
            # Its own task: a request that goes away does not cancel the read others wait on.
            task = asyncio.get_running_loop().create_task(self._lookup(session_id))
            self._inflight[session_id] = task
            task.add_done_callback(lambda _: self._inflight.pop(session_id, None))
        return await asyncio.shield(task)

    async def _lookup(self, session_id: str) -> bool:
        try:
            alive = await asyncio.to_thread(self._read, session_id)
        except StoreUnavailableError:
            raise
        except Exception as exc:  # a backend that broke its contract: still never a 401
            raise StoreUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        self._remember(session_id, alive, self.clock.now())
        return alive

    def _read(self, session_id: str) -> bool:
        self.reads += 1
        with self.store.transaction(write=False) as tx:
            session = tx.session_by_id(session_id)
        if session is None or session.family_revoked_at is not None:
            return False
        return session_invalidity(session, self.clock.now(), self.policy) is None

    def _remember(self, session_id: str, alive: bool, now: float) -> None:
        answers = self._answers
        if len(answers) >= self.max_entries:
            for key in [k for k, (_, until) in answers.items() if until <= now]:
                del answers[key]
            if len(answers) >= self.max_entries:
                for key in list(answers)[: max(1, self.max_entries // 10)]:
                    del answers[key]
        answers[session_id] = (alive, now + self.window)

    def close(self) -> None:
        self.store.close()


async def authenticate_alive(
    verifier: Verifier, liveness: SessionLiveness | None, token: str
) -> Principal:
    """Verify ``token`` and, with ``liveness``, that its session is still alive: the guard's
    check, shared with a session bridge that runs without a guard."""
    principal = await verifier.authenticate(token)
    if liveness is not None and principal.session_id is not None:
        try:
            alive = await liveness.is_alive(principal.session_id)
        except StoreUnavailableError as exc:
            raise Rejection(
                Reason.STORE_UNAVAILABLE, "liveness unknown", error=str(exc)[:200]
            ) from exc
        if not alive:
            raise Rejection(
                Reason.SESSION_REVOKED, "session ended", session_id=principal.session_id
            )
    return principal
