"""The verified-token cache: a repeat request with the same token skips all parsing and crypto.

Bounds, so that memory cannot grow with traffic or with an attacker's creativity:

- at most ``max_entries`` entries (default 10,000);
- only tokens of at most ``max_token_bytes`` (default 4096) are cached; bigger ones are verified
  every time;
- only *verified* tokens enter (an attacker cannot fill it with garbage: every entry costs a
  valid signature from a trusted key), and each dies at its ``exp``.

With the defaults the cache holds at most 10,000 x (a 4 KiB token + its decoded claims + the
principal): under 64 MiB (``MEMORY_BOUND_BYTES``), which ``tests/guard/test_cache.py`` checks with
``tracemalloc`` by filling the cache with 4 KiB tokens (measured: ~56 MiB). A typical Supabase
access token is ~1 KiB, so a full default cache of real tokens is nearer 15-20 MiB.

When full, expired entries are dropped first, then the oldest (first in, first out), so the hit
path is one dict lookup and one comparison: no LRU bookkeeping on every request.
"""

from __future__ import annotations

from sessionkeeper.guard.principal import Principal

DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_TOKEN_BYTES = 4096
#: Documented upper bound of the default cache's memory, checked by a test.
MEMORY_BOUND_BYTES = 64 * 1024 * 1024


class TokenCache:
    """Maps a token to ``(principal, expires_at)``. Not thread-safe by design: one per event
    loop's guard; the worst a race could do in CPython is drop an entry, never corrupt one."""

    __slots__ = ("data", "max_entries", "max_token_bytes")

    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
    ) -> None:
        if max_entries < 0 or max_token_bytes < 0:
            raise ValueError("cache bounds must not be negative")
        self.max_entries = max_entries
        self.max_token_bytes = max_token_bytes
        self.data: dict[str, tuple[Principal, float]] = {}

    def __len__(self) -> int:
        return len(self.data)

    def get(self, token: str, now: float) -> Principal | None:
        entry = self.data.get(token)
        if entry is None:
            return None
        if entry[1] > now:
            return entry[0]
        self.data.pop(token, None)
        return None

    def put(self, token: str, principal: Principal, expires_at: float, now: float) -> None:
        if len(token) > self.max_token_bytes or expires_at <= now or self.max_entries == 0:
            return
        data = self.data
        if len(data) >= self.max_entries and token not in data:
            self._make_room(now)
        data[token] = (principal, expires_at)

    def _make_room(self, now: float) -> None:
        data = self.data
        expired = [token for token, (_, exp) in data.items() if exp <= now]
        for token in expired:
            del data[token]
        # Evict oldest entries in bulk (a tenth), so a full cache doesn't scan on every insert.
        excess = len(data) - self.max_entries + max(1, self.max_entries // 10)
        if excess > 0:
            for token in list(data)[:excess]:
                del data[token]

    def clear(self) -> None:
        self.data.clear()
