"""Sessions and refresh-token families in Redis (``--session-store redis://...``).

Users, identities and signing keys stay in the SQL store; the hot, short-lived data — sessions,
token families, the liveness the API guard reads — lives here, expiring by TTL.

Keys (all under one prefix, default ``sk:``):

- ``s:{sid}`` the session (JSON) and ``f:{sid}`` the set of its token ids;
- ``t:{tid}`` one refresh token (JSON) and ``h:{sha256}`` → its id, for lookup by token;
- ``u:{uid}`` the set of a user's session ids (for logout of all sessions);
- ``lock:{sid}`` the family lock.

**TTL follows the session rules**, not a fixed 30 minutes: a session with a timebox, an
inactivity timeout, a ``not_after`` or a revoked family expires ``retention`` after the earliest
of those ends (so a late refresh still gets the precise ``session_expired`` answer); a session
with no end rule has no TTL, exactly as in SQL. Each write recomputes the TTL, so a refresh
extends an inactivity deadline. A spent token — the parent of a token that has just been
rotated — expires ``retention`` after that rotation; the current token and its parent (which
rotation rule 3 needs) live as long as the session.

**Atomicity:** a write transaction buffers its writes and applies them in one ``MULTI/EXEC``.
``lock_session`` takes ``lock:{sid}`` (``SET NX PX``, waiting at most ``lock_timeout``, then
``StoreConflictError``) and ``WATCH``es the session and its token set; locks are renewed while a
transaction gathers more of them and checked at commit, so the commit fails rather than write
through a lock that lapsed or over a family that another writer changed meanwhile.
Reads that would take several round trips (a token by its hash, a family with its tokens, the
lock together with the session it guards) are small Lua scripts, so a refresh costs about six
round trips. Keys of one family are not hash-tagged together: use a single Redis primary (with
replicas or Sentinel), not Redis Cluster.
Times written by the caller (``updated_at``, ``revoked_at``) come from the injected clock; TTLs
are computed relative to them, so tests with a manual clock behave like production.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict
from typing import Any

import redis
from redis.client import Pipeline

from sessionkeeper.core.sessions import SessionPolicy
from sessionkeeper.errors import StoreConflictError, StoreUnavailableError
from sessionkeeper.store.base import redact_url
from sessionkeeper.store.records import RefreshTokenRecord, SessionRecord

LOCK_TIMEOUT = 5.0  # seconds a refresh waits for its family's lock before a 409
LOCK_TTL_MS = 2_000  # a crashed holder's lock frees itself after this (the commit is fenced,
# so a holder that outlives it fails with a conflict instead of writing without the lock)
SOCKET_TIMEOUT = 3.0  # seconds; an unreachable Redis is a 503 within this, not a hang
PRUNE_USER_INDEX_AT = 64  # session ids per user before expired ones are swept from u:{uid}
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)
# Reads that would cost several round trips, in one. Token keys are built from the prefix
# passed in ARGV (sessionkeeper's keys are not spread over a Redis Cluster).
# Appends each token id of the family set KEYS[n] and its record (token keys are ARGV[n] .. id).
_FAMILY_INTO = """
for _, id in ipairs(redis.call('smembers', KEYS[{n}])) do
  table.insert(out, id)
  table.insert(out, redis.call('get', ARGV[{n}] .. id) or false)
end
return out
"""
_FAMILY = "local out = {}" + _FAMILY_INTO.format(n=1)
# Take a session's lock and, if it was free, read the session and its family in the same step.
_LOCK_AND_LOAD = (
    "if not redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0} end\n"
    "local out = {1, redis.call('get', KEYS[2]) or false}" + _FAMILY_INTO.format(n=3)
)
_BY_HASH = """
local id = redis.call('get', KEYS[1])
if not id then return false end
return {id, redis.call('get', ARGV[1] .. id) or false}
"""
# Extend every lock this transaction holds (KEYS[i] with nonce ARGV[i], new life ARGV[#KEYS+1]);
# returns how many were still ours. Called while a transaction collects many locks (a global
# logout) so the first ones do not lapse before the commit.
_EXTEND = """
local n = 0
for i, key in ipairs(KEYS) do
  if redis.call('get', key) == ARGV[i] then
    redis.call('pexpire', key, ARGV[#KEYS + 1])
    n = n + 1
  end
end
return n
"""

Write = tuple[str, tuple[Any, ...], dict[str, Any]]


def session_expiry(session: SessionRecord, policy: SessionPolicy) -> float | None:
    """When ``session`` stops being refreshable under ``policy`` (``None``: no end rule)."""
    ends = [session.not_after, session.family_revoked_at]
    if policy.timebox is not None:
        ends.append(session.created_at + policy.timebox)
    if policy.inactivity_timeout is not None:
        ends.append((session.refreshed_at or session.created_at) + policy.inactivity_timeout)
    known = [end for end in ends if end is not None]
    return min(known) if known else None


class RedisSessions:
    """The session half of a store, in Redis. Used through ``store.split.SplitStore``."""

    def __init__(
        self,
        url: str,
        *,
        policy: SessionPolicy,
        retention: float,
        prefix: str = "sk:",
        lock_timeout: float = LOCK_TIMEOUT,
    ) -> None:
        self.url_for_display = redact_url(url)
        self.policy = policy
        self.retention = retention
        self.prefix = prefix
        self.lock_timeout = lock_timeout
        self.client: redis.Redis = redis.Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
            health_check_interval=30,
            decode_responses=True,
        )
        self._release = self.client.register_script(_RELEASE)
        self._extend = self.client.register_script(_EXTEND)
        self._lock_and_load = self.client.register_script(_LOCK_AND_LOAD)
        self._load_family = self.client.register_script(_FAMILY)
        self._by_hash = self.client.register_script(_BY_HASH)

    def key(self, kind: str, ident: str) -> str:
        return f"{self.prefix}{kind}:{ident}"

    def ttl_ms(self, session: SessionRecord, now: float) -> int | None:
        """Milliseconds the session's keys live from ``now``; ``None`` for no expiry."""
        end = session_expiry(session, self.policy)
        if end is None:
            return None
        return max(1000, int((end + self.retention - now) * 1000))

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[RedisTransaction]:
        with _redis_errors():
            pipe = self.client.pipeline(transaction=True)
            tx = RedisTransaction(self, pipe, write=write)
            try:
                yield tx
                if write:
                    tx.commit()
            finally:
                tx.release_locks()
                pipe.reset()

    def ping(self) -> None:
        with _redis_errors():
            self.client.ping()

    def close(self) -> None:
        self.client.close()


@contextmanager
def _redis_errors() -> Iterator[None]:
    try:
        yield
    except redis.WatchError as exc:
        # redis-py also raises WatchError when the connection dies while keys are watched:
        # that is an outage (503), not a concurrent change (409).
        lost = isinstance(exc.__context__, redis.ConnectionError | redis.TimeoutError)
        if lost or "occurred while watching" in str(exc):
            raise StoreUnavailableError(f"session store connection lost: {exc}") from exc
        raise StoreConflictError("the session changed during the request") from exc
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StoreUnavailableError(f"session store unreachable: {exc}") from exc
    except redis.RedisError as exc:
        raise StoreUnavailableError(f"session store error: {exc}") from exc


class RedisTransaction:
    """Reads go to Redis (through the transaction's own connection once it ``WATCH``es);
    writes are buffered, visible to later reads of the same transaction, and applied at once."""

    def __init__(self, sessions: RedisSessions, pipe: Pipeline, *, write: bool) -> None:
        self._s = sessions
        self._pipe = pipe
        self._write = write
        # Replies are str (decode_responses=True); redis-py's stubs say bytes | str.
        self._client: Any = sessions.client
        self._writes: list[Write] = []
        self._locks: dict[str, str] = {}
        self._sessions: dict[str, SessionRecord | None] = {}
        self._tokens: dict[str, RefreshTokenRecord | None] = {}
        self._families: dict[str, set[str]] = {}
        self._dirty: set[str] = set()  # ids of sessions and tokens written here
        self._touched: set[str] = set()  # sessions whose family changed here
        self._ids_by_hash: dict[str, str] = {}  # token hash -> id (never changes)

    # Buffered writes -----------------------------------------------------------------------
    def _queue(self, command: str, *args: Any, **kwargs: Any) -> None:
        if not self._write:
            raise RuntimeError("write in a read-only store transaction")
        self._writes.append((command, args, kwargs))

    def _put_session(self, session: SessionRecord) -> None:
        """Write the session; the TTL of its keys is set at commit, from its final state."""
        self._sessions[session.id] = session
        self._dirty.add(session.id)
        self._touched.add(session.id)
        self._queue("set", self._s.key("s", session.id), json.dumps(asdict(session)))

    def _put_token(self, token: RefreshTokenRecord) -> None:
        self._tokens[token.id] = token
        self._ids_by_hash[token.token_hash] = token.id
        self._dirty.add(token.id)
        self._touched.add(token.session_id)
        self._queue("set", self._s.key("t", token.id), json.dumps(asdict(token)))
        self._queue("set", self._s.key("h", token.token_hash), token.id)

    def _expiry_plan(self) -> list[tuple[list[str], int | None]]:
        """Every key of each family written here, with the TTL its session now calls for: the
        session, its token set and each token in it (a token kept without rotation is extended
        with its session, never left to expire first)."""
        plan = []
        for sid in sorted(self._touched):
            session = self.session_by_id(sid)
            if session is None:
                continue  # deleted here (its keys are deleted too) or never existed
            keys = [self._s.key("s", sid), self._s.key("f", sid)]
            for token in self._family_tokens(sid):
                keys += [self._s.key("t", token.id), self._s.key("h", token.token_hash)]
            plan.append((keys, self._s.ttl_ms(session, session.updated_at)))
        return plan

    def commit(self) -> None:
        if not self._writes:
            return
        pipe = self._pipe
        self._extend_locks()  # still ours? (a lapsed lock is a conflict, never a blind write)
        plan = self._expiry_plan()
        pipe.multi()
        for command, args, kwargs in self._writes:
            getattr(pipe, command)(*args, **kwargs)
        for keys, ttl in plan:
            for key in keys:
                if ttl:
                    pipe.pexpire(key, ttl)
                else:
                    pipe.persist(key)
        pipe.execute()

    def release_locks(self) -> None:
        for key, nonce in self._locks.items():
            with suppress(redis.RedisError):  # if this fails, it expires by itself (LOCK_TTL_MS)
                self._s._release(keys=[key], args=[nonce], client=self._s.client)
        self._locks.clear()

    # Sessions ------------------------------------------------------------------------------
    def insert_session(self, session: SessionRecord) -> None:
        self._put_session(session)
        user_key = self._s.key("u", session.user_id)
        self._queue("sadd", user_key, session.id)
        self._prune_user_index(user_key)

    def _prune_user_index(self, user_key: str) -> None:
        """``u:{uid}`` has no TTL; ids of sessions that expired are removed now and then."""
        if self._client.scard(user_key) <= PRUNE_USER_INDEX_AT:
            return
        ids = sorted(self._client.smembers(user_key))
        exists = self._client.mget([self._s.key("s", sid) for sid in ids])
        gone = [sid for sid, raw in zip(ids, exists, strict=True) if raw is None]
        if gone:
            self._queue("srem", user_key, *gone)

    def session_by_id(self, session_id: str) -> SessionRecord | None:
        if session_id not in self._sessions:
            raw = self._client.get(self._s.key("s", session_id))
            self._sessions[session_id] = SessionRecord(**json.loads(raw)) if raw else None
        return self._sessions[session_id]

    def lock_session(self, session_id: str) -> SessionRecord | None:
        if not self._write:
            return self.session_by_id(session_id)
        lock_key = self._s.key("lock", session_id)
        if lock_key not in self._locks:
            self._extend_locks()
            nonce = secrets.token_hex(16)
            s_key, f_key = self._s.key("s", session_id), self._s.key("f", session_id)
            deadline = time.monotonic() + self._s.lock_timeout
            pause = 0.001
            while True:
                # One round trip: the lock, and when we get it, the session and its family.
                got = self._s._lock_and_load(
                    keys=[lock_key, s_key, f_key],
                    args=[nonce, LOCK_TTL_MS, self._s.key("t", "")],
                    client=self._s.client,
                )
                if got[0] == 1:
                    break
                if time.monotonic() >= deadline:
                    raise StoreConflictError("the session is locked by another request")
                time.sleep(pause)
                pause = min(pause * 2, 0.02)
            self._locks[lock_key] = nonce
            # The commit goes through this connection, which watches the session and its token
            # set: every write to a family touches one of them, so if a lapsed lock let another
            # writer in, the commit is refused, not applied. (The lock keys are not watched:
            # renewing them must not abort our own commit.)
            self._pipe.watch(s_key, f_key)  # type: ignore[no-untyped-call]
            self._forget_clean()  # reads made before the lock may be stale
            if session_id not in self._dirty:
                raw = got[1]
                self._sessions[session_id] = SessionRecord(**json.loads(raw)) if raw else None
            self._remember_family(session_id, got[2:])
        return self.session_by_id(session_id)

    def _remember_family(self, session_id: str, pairs: list[Any]) -> None:
        """Cache a family read by a script (``[id, json, id, json, ...]``); our own buffered
        writes win over what the store still holds."""
        if session_id not in self._families:  # else it holds this transaction's additions
            self._families[session_id] = set(pairs[0::2])
        for tid, raw in zip(pairs[0::2], pairs[1::2], strict=True):
            if tid not in self._dirty:
                record = RefreshTokenRecord(**json.loads(raw)) if raw else None
                self._tokens[tid] = record
                if record is not None:
                    self._ids_by_hash[record.token_hash] = tid

    def _extend_locks(self) -> None:
        """Renew the locks already held (one round trip), or fail if one has lapsed."""
        if not self._locks:
            return
        keys, nonces = list(self._locks), list(self._locks.values())
        held = self._s._extend(keys=keys, args=[*nonces, LOCK_TTL_MS], client=self._s.client)
        if int(held) != len(keys):
            raise StoreConflictError("a session lock expired during the request")

    def _forget_clean(self) -> None:
        """Drop cached reads made before the lock (they may be stale); keep our own writes."""
        for cache in (self._sessions, self._tokens):
            for ident in [i for i in cache if i not in self._dirty]:
                del cache[ident]
        self._families = {sid: ids for sid, ids in self._families.items() if sid in self._touched}

    def update_session(self, session: SessionRecord) -> None:
        self._put_session(session)

    def delete_sessions(
        self, user_id: str, *, only: str | None = None, keep: str | None = None
    ) -> int:
        user_key = self._s.key("u", user_id)
        ids = [only] if only is not None else sorted(self._client.smembers(user_key))
        ended = 0
        for sid in ids:
            if sid == keep:
                continue
            # Locked, so a refresh in flight cannot write a new token into a deleted family.
            session = self.lock_session(sid)
            if session is None or session.user_id != user_id:
                self._queue("srem", user_key, sid)
                continue
            for token in self._family_tokens(sid):
                keys = self._s.key("t", token.id), self._s.key("h", token.token_hash)
                self._queue("delete", *keys)
                self._tokens[token.id] = None
                self._dirty.add(token.id)
            self._queue("delete", self._s.key("s", sid), self._s.key("f", sid))
            self._queue("srem", user_key, sid)
            self._sessions[sid] = None
            self._families[sid] = set()
            self._dirty.add(sid)
            ended += 1
        return ended

    # Refresh tokens ------------------------------------------------------------------------
    def _family(self, session_id: str) -> set[str]:
        if session_id not in self._families:
            pairs = self._s._load_family(
                keys=[self._s.key("f", session_id)],
                args=[self._s.key("t", "")],
                client=self._s.client,
            )
            self._remember_family(session_id, pairs)
        return self._families[session_id]

    def _token(self, token_id: str) -> RefreshTokenRecord | None:
        if token_id not in self._tokens:
            raw = self._client.get(self._s.key("t", token_id))
            self._tokens[token_id] = RefreshTokenRecord(**json.loads(raw)) if raw else None
        return self._tokens[token_id]

    def _family_tokens(self, session_id: str) -> list[RefreshTokenRecord]:
        ids = sorted(self._family(session_id))
        return [t for tid in ids if (t := self._token(tid)) is not None]

    def insert_refresh_token(self, token: RefreshTokenRecord) -> None:
        self._put_token(token)
        self._family(token.session_id).add(token.id)
        self._queue("sadd", self._s.key("f", token.session_id), token.id)
        parent = self._token(token.parent_id) if token.parent_id else None
        if parent is not None and parent.id not in self._family(token.session_id):
            # A spent token given a new child (rule 4) is needed again by rule 3: back into the
            # family, where it lives as long as the session (the expiry plan sees to its TTL).
            self._family(token.session_id).add(parent.id)
            self._queue("sadd", self._s.key("f", token.session_id), parent.id)
        grandparent = self._token(parent.parent_id) if parent and parent.parent_id else None
        if (
            grandparent is not None
            and grandparent.revoked_at is not None
            and not self._has_live_child(grandparent.id)
        ):
            # Rule 3 needs only the parent of a live token: the grandparent is now spent and
            # stays findable (a replay still revokes the family) for ``retention``.
            ttl = int(self._s.retention * 1000)
            self._queue("pexpire", self._s.key("t", grandparent.id), ttl)
            self._queue("pexpire", self._s.key("h", grandparent.token_hash), ttl)
            self._queue("srem", self._s.key("f", token.session_id), grandparent.id)
            self._family(token.session_id).discard(grandparent.id)

    def _has_live_child(self, token_id: str) -> bool:
        """Whether a live token of the family still names ``token_id`` as its parent (a branch
        opened by rule 4): then rule 3 may still need it, and it stays in the family."""
        token = self._token(token_id)
        return token is not None and self.live_child_of(token_id) is not None

    def refresh_token_by_hash(self, token_hash: str) -> RefreshTokenRecord | None:
        token_id = self._ids_by_hash.get(token_hash)
        if token_id is None:
            got = self._s._by_hash(
                keys=[self._s.key("h", token_hash)],
                args=[self._s.key("t", "")],
                client=self._s.client,
            )
            if not got:
                return None
            token_id, raw = got
            self._ids_by_hash[token_hash] = token_id
            if token_id not in self._dirty:
                self._tokens[token_id] = RefreshTokenRecord(**json.loads(raw)) if raw else None
        # After ``lock_session`` the family's tokens were re-read under the lock: a token of
        # the family comes from there, fresh; any other is read again (``_forget_clean``).
        return self._token(token_id)

    def live_child_of(self, token_id: str) -> RefreshTokenRecord | None:
        token = self._token(token_id)
        if token is None:
            return None
        children = [
            t
            for t in self._family_tokens(token.session_id)
            if t.parent_id == token_id and t.revoked_at is None
        ]
        return max(children, key=lambda t: t.seq, default=None)

    def next_token_seq(self, session_id: str) -> int:
        return max((t.seq for t in self._family_tokens(session_id)), default=0) + 1

    def revoke_token(self, token_id: str, at: float) -> None:
        token = self._token(token_id)
        if token is None or token.revoked_at is not None:
            return
        token.revoked_at = at
        self._put_token(token)

    def revoke_session_tokens(self, session_id: str, at: float) -> int:
        revoked = 0
        for token in self._family_tokens(session_id):
            if token.revoked_at is None:
                token.revoked_at = at
                self._put_token(token)
                revoked += 1
        return revoked

    # Retention: TTLs do it --------------------------------------------------------------------
    def delete_ended_sessions(
        self,
        *,
        ended_before: float,
        created_before: float | None,
        idle_before: float | None,
        limit: int,
    ) -> int:
        return 0

    def delete_spent_tokens(self, *, revoked_before: float, limit: int) -> int:
        return 0
