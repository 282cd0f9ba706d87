"""The simulated users: each one a separate client session, as a real user's app would hold.

Every user has its own :class:`SessionKeeper` (its own storage: a session file of its own for
half of them, memory for the others; its own clock, skewed for some) and makes bursts of
concurrent requests through its own ``httpx.AsyncClient`` with its own ``SessionAuth``. The
code around each request is what a careful app does, and nothing more:

- ``AuthExpiredError`` is final: the app would show its sign-in prompt. The user then signs in
  again (so the run goes on) -- after a revocation that is expected, otherwise it was spurious.
- A 5xx, a network error or ``IssuerUnavailableError`` is retried with back-off, with the same
  request id (``Idempotency-Key``; ``X-Soak-Attempt`` counts the sends), for up to
  ``retry_budget`` seconds; after that the request has *failed* (the user saw an error).
- Any other answer is final as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from sessionkeeper.client import (
    AuthEvent,
    AuthExpiredError,
    FileStorage,
    IssuerError,
    IssuerUnavailableError,
    MemoryStorage,
    RefreshPolicy,
    Session,
    SessionAuth,
    SessionKeeper,
)
from sessionkeeper.client.storage import SessionStorage
from sessionkeeper.soak.records import (
    AUTH_EXPIRED,
    FAILED,
    NO_OUTCOME,
    OK,
    UNEXPECTED,
    AuthEventRecord,
    RequestRecord,
    Revocation,
    SignInRecord,
    Timeline,
)

API_VERSION = {"X-Supabase-Api-Version": "2024-01-01"}


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every client: httpx builds one per client otherwise (~40 ms each,
    which for 200 users starting at once is seconds of a blocked event loop). Only loopback
    HTTP is used; the context is never exercised."""
    return ssl.create_default_context()


class SkewedClock:
    """The machine's clock plus an offset that faults may change while the run goes on."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def now(self) -> float:
        return time.time() + self.offset


@dataclass(frozen=True)
class Behaviour:
    """How users behave; the same for every user, randomness per user."""

    think: float = 4.0  # mean seconds between bursts (exponential)
    max_burst: int = 4  # concurrent requests per burst: 1..max_burst
    post_share: float = 0.4  # share of requests that are POST (a side effect)
    retry_budget: float = 60.0  # seconds a request is retried after 5xx / network errors
    request_bound: float = 120.0  # past this a request has no outcome (lost)
    http_timeout: float = 30.0


@dataclass
class SimUser:
    index: int
    email: str
    password: str
    auth_url: str
    clock: SkewedClock
    storage_path: Path | None
    timeline: Timeline
    behaviour: Behaviour
    requests: list[RequestRecord]
    events: list[AuthEventRecord]
    sign_ins: list[SignInRecord]
    rng: random.Random
    user_id: str = ""
    keeper: SessionKeeper = field(init=False)
    auth: SessionAuth = field(init=False)
    revocation: Revocation | None = None

    def __post_init__(self) -> None:
        storage: SessionStorage = (
            FileStorage(self.storage_path) if self.storage_path is not None else MemoryStorage()
        )
        self.keeper = SessionKeeper(
            self.auth_url,
            storage=storage,
            clock=self.clock,
            policy=RefreshPolicy(http_timeout=10.0),
            transport=httpx.HTTPTransport(verify=_tls()),
        )
        self.auth = SessionAuth(self.keeper)
        self.keeper.subscribe(self._on_event)

    def _on_event(self, event: AuthEvent, session: Session | None) -> None:
        # Runs in whichever thread caused the event; list.append is atomic.
        self.events.append(AuthEventRecord(self.index, self.timeline.now(), event.name))
        if event is AuthEvent.TOKEN_REFRESHED:
            self.timeline.count("refreshes")
        elif event is AuthEvent.NEEDS_REAUTH:
            self.timeline.count("needs_reauth")

    # -- set-up -------------------------------------------------------------------------------

    async def sign_up(self, http: httpx.AsyncClient) -> None:
        """Create the user (``/signup`` answers with a session, which the keeper adopts)."""
        data = await _auth_call(
            http,
            "POST",
            f"{self.auth_url}/signup",
            json={"email": self.email, "password": self.password},
            budget=120.0,
        )
        session = Session.from_response(data, received_at=self.clock.now())
        self.user_id = session.user_id or ""
        await asyncio.to_thread(self.keeper.set_session, session)

    def close(self) -> None:
        self.keeper.close()

    # -- the user's life ----------------------------------------------------------------------

    async def live(self, until: float) -> None:
        """Bursts of requests and pauses until ``until`` (run time), through a client of the
        user's own (one shared by hundreds of users would spend its time managing its pool)."""
        burst = self.behaviour.max_burst
        async with httpx.AsyncClient(
            base_url=self.auth_url.removesuffix("/auth/v1"),
            auth=self.auth,
            timeout=self.behaviour.http_timeout,
            limits=httpx.Limits(max_connections=burst, max_keepalive_connections=burst),
            verify=_tls(),
        ) as http:
            await self._live(http, until)

    async def _live(self, http: httpx.AsyncClient, until: float) -> None:
        await asyncio.sleep(self.rng.uniform(0, self.behaviour.think))
        while self.timeline.now() < until:
            if self.keeper.needs_reauth or self.keeper.session is None:
                await self._sign_in_again()
            size = self.rng.randint(1, self.behaviour.max_burst)
            await asyncio.gather(*(self._request(http) for _ in range(size)))
            pause = min(self.rng.expovariate(1 / self.behaviour.think), 4 * self.behaviour.think)
            await asyncio.sleep(max(0.0, min(pause, until - self.timeline.now())))

    async def _sign_in_again(self) -> None:
        """What the app does after its sign-in prompt: the user signs in again."""
        deadline = time.monotonic() + 120.0
        delay = 0.5
        started = self.timeline.now()
        while time.monotonic() < deadline:
            try:
                await self.keeper.asign_in(self.email, self.password)
            except (IssuerUnavailableError, IssuerError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.sign_ins.append(SignInRecord(self.index, started, self.timeline.now()))
            return

    async def _request(self, http: httpx.AsyncClient) -> None:
        kind = "post" if self.rng.random() < self.behaviour.post_share else "get"
        record = RequestRecord(self.index, kind, uuid.uuid4().hex, self.timeline.now())
        self.requests.append(record)
        try:
            await asyncio.wait_for(self._attempts(http, record), self.behaviour.request_bound)
        except TimeoutError:
            record.outcome = NO_OUTCOME
        record.ended = self.timeline.now()
        self.timeline.count(f"outcome_{record.outcome}")

    async def _attempts(self, http: httpx.AsyncClient, record: RequestRecord) -> None:
        deadline = time.monotonic() + self.behaviour.retry_budget
        delay = 0.25
        while True:
            record.attempts += 1
            retry_after = 0.0
            try:
                response = await self._send(http, record)
            except AuthExpiredError as exc:
                record.outcome, record.reason = AUTH_EXPIRED, exc.reason
                return
            except IssuerUnavailableError:
                record.unavailable += 1
                self.timeline.count("issuer_unavailable")
            except httpx.TransportError:
                record.transport_errors += 1
                self.timeline.count("transport_errors")
            else:
                record.status = response.status_code
                if response.status_code < 300:
                    record.outcome = OK
                    return
                if response.status_code < 500:
                    record.outcome = UNEXPECTED
                    return
                record.five_xx += 1
                self.timeline.count("five_xx")
                with contextlib.suppress(ValueError):
                    retry_after = float(response.headers.get("retry-after", "0"))
            wait = max(delay * self.rng.uniform(0.5, 1.0), min(retry_after, 2.0))
            if time.monotonic() + wait > deadline:
                record.outcome = FAILED
                return
            await asyncio.sleep(wait)
            delay = min(delay * 2, 4.0)

    async def _send(self, http: httpx.AsyncClient, record: RequestRecord) -> httpx.Response:
        if record.kind == "get":
            return await http.get("/api/ping")
        return await http.post(
            "/api/effects",
            json={"user": self.index},
            headers={"Idempotency-Key": record.request_id, "X-Soak-Attempt": str(record.attempts)},
        )


async def _auth_call(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    budget: float,
    json: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, object]:
    """One auth-server call, retried on 5xx / network errors for ``budget`` seconds."""
    deadline = time.monotonic() + budget
    delay = 0.25
    last = ""
    while time.monotonic() < deadline:
        try:
            r = await http.request(
                method, url, json=json, headers={**API_VERSION, **(headers or {})}
            )
        except httpx.TransportError as exc:
            last = type(exc).__name__
        else:
            if r.status_code < 300:
                return r.json() if r.content else {}
            if r.status_code < 500 and r.status_code not in (408, 409, 429):
                raise RuntimeError(f"{method} {httpx.URL(url).path}: {r.status_code}")
            last = str(r.status_code)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 4.0)
    raise RuntimeError(f"{method} {httpx.URL(url).path}: no answer within {budget} s ({last})")


async def revoke(
    http: httpx.AsyncClient,
    user: SimUser,
    revocation: Revocation,
    now: Callable[[], float],
    budget: float = 120.0,
) -> None:
    """Sign the user out everywhere from a second session of theirs (another device).

    ``revocation.started`` is when the first ``/logout`` was sent, ``done`` when one answered
    204. The second session's access token lives as long as anyone's (10 s in a soak), so when
    the store is paused long enough for it to expire, the second device signs in again."""
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        data = await _auth_call(
            http,
            "POST",
            f"{user.auth_url}/token?grant_type=password",
            json={"email": user.email, "password": user.password},
            budget=max(1.0, deadline - time.monotonic()),
        )
        access = str(data["access_token"])
        if revocation.started is None:
            revocation.started = now()
        try:
            await _auth_call(
                http,
                "POST",
                f"{user.auth_url}/logout?scope=global",
                headers={"Authorization": f"Bearer {access}"},
                budget=min(6.0, max(1.0, deadline - time.monotonic())),
            )
        except RuntimeError:
            continue  # refused (the token expired meanwhile) or no answer: sign in again
        revocation.done = now()
        return
