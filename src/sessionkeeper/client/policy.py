"""The knobs of the refresh policy, in one frozen object with production defaults.

Tests shrink the waits; applications rarely need to touch anything but ``margin``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RefreshPolicy:
    """When to refresh, how long to wait, how to back off.

    - ``margin``: refresh this many seconds before expiry (capped at half the token's lifetime,
      so a 5-minute token is not refreshed on every call with the default 120 s).
    - ``lock_timeout``: the longest wait for the cross-process file lock; after it the refresh
      goes ahead without the lock (the server's reuse interval absorbs the race), so a hung
      process holding the lock never blocks the others.
    - ``wait_timeout``: the longest a call waits for a refresh (or re-authentication) that
      another call started.
    - ``refresh_deadline``: how long a refresh keeps retrying a transient failure when the
      calls waiting for it have no valid token left.
    - ``backoff_initial`` / ``backoff_max``: exponential back-off between failed attempts, with
      jitter, so a fleet of clients does not hammer a recovering issuer in step.
    - ``watch_interval``: at most this often a call checks whether shared storage changed
      (another process refreshed or signed out).
    - ``reauth_wait``: how long a call made in the *needs re-auth* state waits for the app to
      sign in again before failing with ``AuthExpiredError`` (0: fail at once).
    - ``http_timeout``: timeout of each call to the auth server.
    """

    margin: float = 120.0
    lock_timeout: float = 10.0
    wait_timeout: float = 30.0
    refresh_deadline: float = 30.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    watch_interval: float = 1.0
    reauth_wait: float = 0.0
    http_timeout: float = 10.0

    def effective_margin(self, lifetime: float) -> float:
        """The proactive margin for a token that lives ``lifetime`` seconds."""
        return min(self.margin, lifetime / 2)

    def backoff(self, failures: int) -> float:
        """Delay before the next attempt after ``failures`` consecutive failures (>= 1)."""
        ceiling = min(self.backoff_max, self.backoff_initial * 2.0 ** min(failures - 1, 30))
        return ceiling * random.uniform(0.5, 1.0)
