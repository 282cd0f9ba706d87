"""Lifecycle events and the listeners that receive them.

Listeners are plain callables, called synchronously in the thread that caused the event (a
request's thread, or the background thread that ran a refresh). A failing listener is logged and
never breaks the client: an event is information, not control flow.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sessionkeeper.client.session import Session

log = logging.getLogger("sessionkeeper.client")


class AuthEvent(enum.StrEnum):
    """What happened to the session. Names match supabase auth-js where it has one."""

    SIGNED_IN = "SIGNED_IN"
    TOKEN_REFRESHED = "TOKEN_REFRESHED"  # noqa: S105  (an event name)
    SIGNED_OUT = "SIGNED_OUT"
    NEEDS_REAUTH = "NEEDS_REAUTH"
    REAUTHENTICATED = "REAUTHENTICATED"


Listener = Callable[[AuthEvent, "Session | None"], None]


class Listeners:
    """A thread-safe list of listeners."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []

    def add(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def emit(self, event: AuthEvent, session: Session | None) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event, session)
            except Exception:
                log.exception("auth event listener failed", extra={"auth_event": str(event)})
