"""The session keeper: one session, kept alive for every call that needs it.

A :class:`SessionKeeper` holds the current session in memory and hands out ``Authorization``
headers. Almost every call takes the fast path: the token is not near expiry, nothing changed
in shared storage, so the header is returned with no lock and no I/O. Everything else is a
*flight* (:mod:`sessionkeeper.client.flight`), and at most one flight runs per keeper:

- a token inside the proactive margin but still valid starts a flight in the background and
  the call goes on with the valid token (it never waits for, or sees, a refresh failure);
- an expired token, or one the API refused with 401, makes the call wait for the flight
  (bounded) and use its result;
- the flight takes the storage lock (bounded: a hung holder only delays it), re-reads the
  storage and adopts what another process wrote, or refreshes and writes the result;
- transient failures back off and keep the session; definitive ones re-read storage once more,
  then enter *needs re-auth*: ``NEEDS_REAUTH`` fires once, calls fail with
  :class:`AuthExpiredError` (or wait ``reauth_wait`` for a new sign-in), nothing is signed out.

Flights run in a thread of their own, so threads and asyncio tasks on any loop, sync and async
clients alike, share one flight per keeper; the storage lock extends that to processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from sessionkeeper.client.errors import (
    AuthExpiredError,
    IssuerError,
    IssuerUnavailableError,
    SessionClientError,
    StorageUnreadableError,
)
from sessionkeeper.client.events import AuthEvent, Listener, Listeners
from sessionkeeper.client.flight import Flight, Wait, running_future
from sessionkeeper.client.issuer import Issuer
from sessionkeeper.client.policy import RefreshPolicy
from sessionkeeper.client.session import Session
from sessionkeeper.client.storage import MemoryStorage, SessionStorage
from sessionkeeper.clock import Clock, SystemClock
from sessionkeeper.logs import fingerprint

log = logging.getLogger("sessionkeeper.client")

Reauthenticate = Callable[["SessionKeeper"], "Session | None"]
_Event = tuple[AuthEvent, Session | None]


@dataclass(frozen=True)
class _Current:
    """The session with its deadlines precomputed, swapped atomically as one reference."""

    session: Session
    refresh_at: float
    expires_at: float
    authorization: str


class SessionKeeper:
    """Signs in, keeps the session fresh for every call, signs out.

    ``auth_url`` is the auth server's base (``https://example.com/auth/v1``). ``storage``
    defaults to memory; pass a :class:`~sessionkeeper.client.FileStorage` to share the session
    with other processes. ``reauthenticate``, if given, is called (in a background thread) when
    the session can no longer be refreshed; it may sign in again (``keeper.sign_in``) or return
    a new :class:`Session`, and the calls waiting for it are then replayed once.
    """

    def __init__(
        self,
        auth_url: str,
        *,
        storage: SessionStorage | None = None,
        clock: Clock | None = None,
        policy: RefreshPolicy | None = None,
        api_key: str | None = None,
        reauthenticate: Reauthenticate | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.policy = policy or RefreshPolicy()
        self._clock: Clock = clock or SystemClock()
        self._storage: SessionStorage = storage if storage is not None else MemoryStorage()
        self._issuer = Issuer(
            auth_url,
            clock=self._clock,
            timeout=self.policy.http_timeout,
            api_key=api_key,
            transport=transport,
        )
        self._reauthenticate = reauthenticate
        self._listeners = Listeners()
        self._mutex = threading.Lock()
        self._deferred = threading.local()  # .events: a flight's events, emitted when it lands
        self._current: _Current | None = None
        self._flight: Flight | None = None
        self._needs_reauth: str | None = None
        self._reauthed = running_future()
        self._failures = 0
        self._retry_at = 0.0  # monotonic: no proactive attempt before this
        self._from_401: str | None = None  # the header a 401-recovery refresh produced
        self._next_watch = time.monotonic() + self.policy.watch_interval
        self._closed = threading.Event()
        self._ticker: threading.Thread | None = None
        stored = self._load_or(None)
        if stored is not None:
            self._current = self._prepare(stored)

    # -- public API -------------------------------------------------------------------------

    @property
    def session(self) -> Session | None:
        """The session in memory (``None`` when signed out)."""
        current = self._current
        return current.session if current else None

    @property
    def needs_reauth(self) -> bool:
        return self._needs_reauth is not None

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event, session)`` on every :class:`AuthEvent`; returns an unsubscribe."""
        return self._listeners.add(listener)

    def sign_in(self, email: str, password: str) -> Session:
        """Password grant. Raises :class:`IssuerError` (e.g. ``invalid_credentials``)."""
        session = self._issuer.password_grant(email, password)
        log.info("signed in", extra={"token": fingerprint(session.access_token)})
        self._store_and_install(session, AuthEvent.SIGNED_IN)
        return session

    async def asign_in(self, email: str, password: str) -> Session:
        return await asyncio.to_thread(self.sign_in, email, password)

    def set_session(self, session: Session) -> None:
        """Adopt a session obtained elsewhere (an OAuth redirect, another tool)."""
        self._store_and_install(session, AuthEvent.SIGNED_IN)

    def sign_out(self, scope: str = "local") -> None:
        """Forget the session here and in storage, then tell the server (``POST /logout``).

        Local state is cleared first, so the user is signed out here even if the server cannot
        be reached. ``scope`` is GoTrue's: ``local`` (this session), ``global`` (every session of
        the user), ``others``.
        """
        with self._storage.lock(self.policy.lock_timeout):
            with self._mutex:
                # Captured before the file goes: a request thread that notices the missing
                # file could otherwise clear the session first, and /logout would be skipped.
                current = self._current
            self._storage.save(None)
            with self._mutex:
                events = self._clear("signed_out")
        self._emit(events)
        if current is not None:
            self._logout_remote(current.session, scope)

    async def asign_out(self, scope: str = "local") -> None:
        await asyncio.to_thread(self.sign_out, scope)

    def start_auto_refresh(self, tick: float = 1.0) -> None:
        """Refresh on a timer too, not only when a call needs a token.

        For long-lived processes that may sit idle past the proactive margin (or past the
        server's inactivity timeout): every ``tick`` seconds a background thread starts the
        same single-flight refresh a call would. Stopped by :meth:`close`.
        """
        with self._mutex:
            if self._ticker is not None:
                return
            self._ticker = threading.Thread(
                target=self._tick, args=(tick,), name="sessionkeeper-auto-refresh", daemon=True
            )
        self._ticker.start()

    def close(self) -> None:
        """Stop the auto-refresh timer and close the connection to the auth server."""
        self._closed.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
        self._issuer.close()

    def _tick(self, tick: float) -> None:
        while not self._closed.wait(tick):
            current = self._current
            if current is None or self._clock.now() < current.refresh_at:
                continue
            # Signed out or needs re-auth: the calls report it, not the timer.
            with contextlib.suppress(SessionClientError):
                self._plan()  # starts a background flight if one is due; never waits here

    def get_authorization(self) -> str:
        """The ``Authorization`` header for a call, refreshing first if the token expired."""
        fast = self._fast_authorization()
        if fast is not None:
            return fast
        plan = self._plan()
        return plan if isinstance(plan, str) else plan.result().authorization

    async def aget_authorization(self) -> str:
        fast = self._fast_authorization()
        if fast is not None:
            return fast
        if time.monotonic() >= self._next_watch:
            # The storage check stats (and may read) the shared file: off the event loop, so a
            # slow disk or network filesystem never stalls the app's other tasks.
            await asyncio.to_thread(self._watch)
        plan = self._plan()  # its own watch is a no-op now
        return plan if isinstance(plan, str) else (await plan.aresult()).authorization

    def recover(self, used: str) -> str:
        """A call made with ``used`` got 401: the header to retry it with (once)."""
        plan = self._recover_plan(used)
        return plan if isinstance(plan, str) else plan.result().authorization

    async def arecover(self, used: str) -> str:
        plan = self._recover_plan(used)
        return plan if isinstance(plan, str) else (await plan.aresult()).authorization

    def accepted(self, used: str) -> None:
        """A call made with ``used`` was not refused. Cheap: called on every response."""
        if self._from_401 is not None and used == self._from_401:
            self._from_401 = None  # the refreshed token works: a later 401 deserves a refresh

    def rejected(self, used: str) -> AuthExpiredError:
        """The retry with ``used`` got 401 too: the session is gone. Returns the error to raise."""
        with self._mutex:
            current = self._current
            entered = current is not None and current.authorization == used
            events = self._enter_needs_reauth("rejected") if entered else []
            start = self._start_reauth_flight() if events else None
        self._emit(events)
        if start is not None:
            start()
        log.warning("401 after refresh and retry: giving up this call", extra={"entered": entered})
        return AuthExpiredError("rejected")

    # -- the request path ---------------------------------------------------------------------

    def _fast_authorization(self) -> str | None:
        current = self._current
        if (
            current is None
            or self._needs_reauth is not None
            or self._clock.now() >= current.refresh_at
            or time.monotonic() >= self._next_watch
        ):
            return None
        return current.authorization

    def _plan(self) -> str | Wait:
        """Decide, without blocking, whether a call can go now or must wait for a flight."""
        self._watch()
        start = None
        with self._mutex:
            current = self._current
            if current is None:
                raise AuthExpiredError("not_signed_in", "not signed in")
            if self._needs_reauth is not None:
                return self._reauth_wait()
            now = self._clock.now()
            if now < current.refresh_at:
                return current.authorization
            flight = self._flight
            valid = now < current.expires_at
            if flight is None and (not valid or time.monotonic() >= self._retry_at):
                flight, start = self._new_flight(current.session, must_replace=not valid)
                if valid:
                    self._log_proactive(current, now)
            plan: str | Wait = current.authorization
            if not valid:
                assert flight is not None
                flight.must_replace = True
                plan = Wait(
                    flight.future, self.policy.wait_timeout, reauth=False, expired=self._expired
                )
        if start is not None:
            start()
        return plan

    def _recover_plan(self, used: str) -> str | Wait:
        start = None
        with self._mutex:
            current = self._current
            if current is None:
                raise AuthExpiredError("signed_out", "signed out while the call was running")
            if self._needs_reauth is not None:
                return self._reauth_wait()
            if current.authorization != used:
                return current.authorization  # someone refreshed meanwhile: retry with theirs
            refused = used == self._from_401
            if not refused:
                flight = self._flight
                if flight is None:
                    flight, start = self._new_flight(current.session, must_replace=True)
                flight.must_replace = True
                flight.after_401 = True
                wait = Wait(
                    flight.future, self.policy.wait_timeout, reauth=False, expired=self._expired
                )
            else:
                # The token a 401-recovery just brought was refused as well (a concurrent call
                # found out first): the session is gone, and another refresh would not help.
                events = self._enter_needs_reauth("rejected")
                start = self._start_reauth_flight() if events else None
        if refused:
            self._emit(events)
            if start is not None:
                start()
            log.warning("401 with the token a refresh just brought: giving up this call")
            raise AuthExpiredError("rejected")
        log.info("401: recovering with a refresh", extra={"token": fingerprint(used)})
        if start is not None:
            start()
        return wait

    def _expired(self) -> str | None:
        """Why re-authentication is needed, if it is (read when a wait times out)."""
        return self._needs_reauth

    def _reauth_wait(self) -> Wait:
        """Called under the mutex in the *needs re-auth* state."""
        assert self._needs_reauth is not None
        if self._flight is not None:  # the reauthenticate callback is running
            return Wait(self._flight.future, self.policy.wait_timeout, reauth=True)
        if self.policy.reauth_wait > 0:
            return Wait(
                self._reauthed,
                self.policy.reauth_wait,
                reauth=True,
                poll=self._check_storage,
                slice_seconds=self.policy.watch_interval,
            )
        raise AuthExpiredError(self._needs_reauth)

    def _watch(self) -> None:
        """At most every ``watch_interval``: adopt what another process wrote to storage."""
        now = time.monotonic()
        if now < self._next_watch:
            return
        self._next_watch = now + self.policy.watch_interval
        self._check_storage()

    def _load_or(self, fallback: Session | None) -> Session | None:
        """What storage holds; ``fallback`` when it holds something unreadable (a corrupt or
        unreadable file is not a sign-out: the session in memory is kept, and the next save
        repairs the file)."""
        try:
            return self._storage.load()
        except StorageUnreadableError as exc:
            log.warning(
                "shared session storage unreadable; keeping the session in memory",
                extra={"error": str(exc)[:200]},
            )
            return fallback

    def _check_storage(self) -> None:
        if not self._storage.changed():
            return
        try:
            stored = self._storage.load()
        except StorageUnreadableError:
            return  # logged by storage; keep what we have
        with self._mutex:
            if stored is None:
                events = self._clear("signed_out_elsewhere")
            else:
                events = self._install(stored, self._adoption_event(stored))
        if events:
            log.info("adopted a change from shared storage", extra={"event": str(events[0][0])})
        self._emit(events)

    # -- flights ------------------------------------------------------------------------------

    def _new_flight(
        self, stale: Session, *, must_replace: bool
    ) -> tuple[Flight, Callable[[], None]]:
        """Called under the mutex: register a flight; the caller starts it after releasing."""
        flight = Flight(stale, must_replace)
        self._flight = flight
        return flight, lambda: self._launch(flight)

    def _start_reauth_flight(self) -> Callable[[], None] | None:
        """Called under the mutex on entering *needs re-auth*: run the callback, if any."""
        if self._reauthenticate is None or self._flight is not None or self._current is None:
            return None
        flight = Flight(self._current.session, must_replace=True, reauth_only=True)
        self._flight = flight
        return lambda: self._launch(flight)

    def _launch(self, flight: Flight) -> None:
        threading.Thread(
            target=self._fly, args=(flight,), name="sessionkeeper-refresh", daemon=True
        ).start()

    def _fly(self, flight: Flight) -> None:
        # Listeners hear this flight's events only once it has landed and its callers have their
        # answer: a listener that makes an authenticated call (which may itself need a refresh
        # or a 401 recovery) must not wait on the very flight that is running it.
        self._deferred.events = []
        try:
            self._fly_and_land(flight)
        finally:
            events, self._deferred.events = self._deferred.events, None
            self._emit(events)

    def _fly_and_land(self, flight: Flight) -> None:
        try:
            session = self._reauth(flight.stale) if flight.reauth_only else self._refresh(flight)
        except SessionClientError as exc:
            self._land(flight)
            flight.future.set_exception(exc)
        except BaseException as exc:
            # Not the issuer's answer: a bug, a storage failure, a callback that raised. Back
            # off like a transient failure (no refresh storm on every call), keep the session,
            # and hand callers a client error rather than whatever was raised.
            with self._mutex:
                self._failures += 1
                self._retry_at = time.monotonic() + self.policy.backoff(self._failures)
            log.warning(
                "refresh failed unexpectedly; session kept, backing off",
                extra={"error": type(exc).__name__},
            )
            self._land(flight)
            failure = IssuerUnavailableError(f"refresh failed: {type(exc).__name__}")
            failure.__cause__ = exc
            flight.future.set_exception(failure)
        else:
            if flight.after_401:
                with self._mutex:
                    self._from_401 = session.authorization
            self._land(flight)
            flight.future.set_result(session)

    def _land(self, flight: Flight) -> None:
        with self._mutex:
            if self._flight is flight:
                self._flight = None

    def _refresh(self, flight: Flight) -> Session:
        stale = flight.stale
        deadline: float | None = None
        reason = "no_refresh_token"
        while True:
            if self._blocking(flight):
                deadline = deadline or time.monotonic() + self.policy.refresh_deadline
                self._sleep_until_retry(deadline)
            with self._storage.lock(self.policy.lock_timeout):
                stored = self._load_or(stale)
                adopted = self._adopt_stored(stored, stale, flight)
                if adopted is not None:
                    return adopted
                stale = stored or stale  # refresh from the newest token anyone holds
                if stale.refresh_token is None:
                    break
                try:
                    session = self._issuer.refresh_grant(stale.refresh_token)
                except IssuerUnavailableError as exc:
                    if (kept := self._transient_failure(flight, exc)) is not None:
                        return kept
                    continue
                except IssuerError as exc:
                    newer = self._load_or(None)  # another process may hold a newer token
                    if newer is not None and not _same(newer, stale):
                        return self._install_adopted(newer)
                    log.warning(
                        "refresh refused",
                        extra={"error_code": exc.code, "token": fingerprint(stale.refresh_token)},
                    )
                    reason = exc.code
                    break
                # In memory first: the server has rotated the token, so losing this session
                # to a failed write would lose the family.
                self._record_success(stale, session)
                self._save_quietly(session)
                return session
        # Outside the lock: the callback may sign in again, which takes it.
        validate = flight.must_replace and stale.refresh_token is None
        return self._reauth(stale, reason=reason, validate=validate)

    def _save_quietly(self, session: Session) -> None:
        try:
            self._storage.save(session)
        except OSError as exc:
            log.warning(
                "could not write the refreshed session to shared storage; kept in memory",
                extra={"error": type(exc).__name__, "token": fingerprint(session.access_token)},
            )

    def _blocking(self, flight: Flight) -> bool:
        """Whether a caller needs this flight's result (it then retries transient failures)."""
        with self._mutex:
            return flight.must_replace or self._clock.now() >= _expiry(flight.stale)

    def _sleep_until_retry(self, deadline: float) -> None:
        delay = self._retry_at - time.monotonic()
        if delay <= 0:
            return
        if time.monotonic() + delay > deadline:
            raise IssuerUnavailableError("the auth server is unavailable; the session is kept")
        time.sleep(delay)

    def _transient_failure(self, flight: Flight, exc: IssuerUnavailableError) -> Session | None:
        """Back off. Returns the kept session if no caller needs a new token, else ``None``."""
        with self._mutex:
            self._failures += 1
            delay = self.policy.backoff(self._failures)
            self._retry_at = time.monotonic() + delay
            keep = not flight.must_replace and self._clock.now() < _expiry(flight.stale)
            if keep and self._flight is flight:
                self._flight = None  # later callers start a fresh flight after the back-off
        log.warning(
            "refresh failed; session kept, backing off",
            extra={"error": str(exc), "failures": self._failures, "retry_in": round(delay, 3)},
        )
        return flight.stale if keep else None

    def _record_success(self, old: Session, new: Session) -> None:
        with self._mutex:
            self._failures = 0
            self._retry_at = 0.0
            events = self._install(new, AuthEvent.TOKEN_REFRESHED)
        log.info(
            "token refreshed",
            extra={
                "old": fingerprint(old.access_token),
                "token": fingerprint(new.access_token),
                "expires_in": new.expires_in,
            },
        )
        self._emit(events)

    def _adopt_stored(
        self, stored: Session | None, stale: Session, flight: Flight
    ) -> Session | None:
        """Inside the lock: use what another process stored instead of refreshing, if we can."""
        if stored is None:
            with self._mutex:
                events = self._clear("signed_out_elsewhere")
            self._emit(events)
            raise AuthExpiredError("signed_out", "signed out (by this or another process)")
        if _same(stored, stale):
            return None
        with self._mutex:
            usable = flight.must_replace or self._clock.now() < self._prepare(stored).refresh_at
        return self._install_adopted(stored) if usable else None

    def _install_adopted(self, stored: Session) -> Session:
        with self._mutex:
            self._failures = 0
            self._retry_at = 0.0
            events = self._install(stored, self._adoption_event(stored))
        log.info(
            "adopted a newer session from storage",
            extra={"token": fingerprint(stored.access_token)},
        )
        self._emit(events)
        return stored

    def _reauth(self, stale: Session, reason: str = "rejected", validate: bool = False) -> Session:
        """The session cannot be refreshed: *needs re-auth*, then the callback if there is one."""
        if validate:
            self._validate(stale)
        with self._mutex:
            events = self._enter_needs_reauth(reason)
        self._emit(events)
        if self._reauthenticate is not None:
            try:
                replacement = self._reauthenticate(self)
            except Exception:
                log.exception("reauthenticate callback failed")
                replacement = None
            if replacement is not None:
                self._store_and_install(replacement, AuthEvent.REAUTHENTICATED)
            with self._mutex:
                current = self._current
                if current is not None and self._needs_reauth is None:
                    return current.session
        raise AuthExpiredError(reason)

    def _validate(self, session: Session) -> None:
        """A token without a refresh token was refused: ask the issuer once, for the log."""
        try:
            self._issuer.user(session.access_token)
        except (IssuerError, IssuerUnavailableError) as exc:
            log.info("the issuer refuses the token too", extra={"error": str(exc)})
        else:
            log.warning("the API refused a token the issuer accepts: check the API's configuration")

    # -- state changes (the ``_install``/``_clear``/``_enter`` helpers run under the mutex) ------

    def _store_and_install(self, session: Session, event: AuthEvent) -> None:
        with self._storage.lock(self.policy.lock_timeout):
            self._storage.save(session)
            with self._mutex:
                self._failures = 0
                self._retry_at = 0.0
                events = self._install(session, event)
        self._emit(events)

    def _adoption_event(self, stored: Session) -> AuthEvent:
        current = self._current
        if current is None or current.session.user_id != stored.user_id:
            return AuthEvent.SIGNED_IN
        return AuthEvent.TOKEN_REFRESHED

    def _install(self, session: Session, event: AuthEvent) -> list[_Event]:
        if self._current is not None and _same(self._current.session, session):
            return []
        self._current = self._prepare(session)
        if self._needs_reauth is not None:
            self._needs_reauth = None
            event = AuthEvent.REAUTHENTICATED
        if not self._reauthed.done():
            self._reauthed.set_result(session)
        return [(event, session)]

    def _clear(self, reason: str) -> list[_Event]:
        current = self._current
        if current is None:
            return []
        self._current = None
        self._needs_reauth = None
        if not self._reauthed.done():
            self._reauthed.set_exception(AuthExpiredError(reason))
        log.info("session cleared", extra={"reason": reason})
        return [(AuthEvent.SIGNED_OUT, current.session)]

    def _enter_needs_reauth(self, reason: str) -> list[_Event]:
        if self._needs_reauth is not None or self._current is None:
            return []
        self._needs_reauth = reason
        self._reauthed = running_future()
        log.warning("session needs re-authentication", extra={"reason": reason})
        return [(AuthEvent.NEEDS_REAUTH, self._current.session)]

    def _prepare(self, session: Session) -> _Current:
        expires_at = _expiry(session)
        lifetime = session.expires_in or 0.0
        margin = self.policy.effective_margin(lifetime) if session.refresh_token else 0.0
        return _Current(session, expires_at - margin, expires_at, session.authorization)

    def _emit(self, events: list[_Event]) -> None:
        pending: list[_Event] | None = getattr(self._deferred, "events", None)
        if pending is not None:  # inside a flight: after it lands (see _fly)
            pending.extend(events)
            return
        for event, session in events:
            self._listeners.emit(event, session)

    def _log_proactive(self, current: _Current, now: float) -> None:
        session = current.session
        age = now - (current.expires_at - session.expires_in) if session.expires_in else None
        log.info(
            "proactive refresh",
            extra={
                "token": fingerprint(session.access_token),
                "seconds_left": round(current.expires_at - now, 3),
                "token_age": round(age, 3) if age is not None else None,
            },
        )

    def _logout_remote(self, session: Session, scope: str) -> None:
        try:
            if self._clock.now() >= _expiry(session) and session.refresh_token:
                # /logout needs a live access token; without one the server session would linger.
                session = self._issuer.refresh_grant(session.refresh_token)
            self._issuer.logout(session.access_token, scope)
        except (IssuerError, IssuerUnavailableError) as exc:
            log.warning("server-side logout failed; signed out locally", extra={"error": str(exc)})
        else:
            log.info(
                "signed out", extra={"token": fingerprint(session.access_token), "scope": scope}
            )


def _expiry(session: Session) -> float:
    return session.expires_at if session.expires_at is not None else math.inf


def _same(a: Session, b: Session) -> bool:
    """The same tokens (the user record may differ in detail between two copies)."""
    return a.access_token == b.access_token and a.refresh_token == b.refresh_token
