"""PKCE flow states in every backend (in SQL also under the Redis split store), and the
single-use redemption of an auth code under concurrency."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from sessionkeeper.service.pkce import FLOW_STATE_LIFETIME, Challenge, challenge_of
from sessionkeeper.store import Store
from sessionkeeper.store.records import FlowStateRecord
from tests.conftest import API_VERSION, PASSWORD, AppHarness
from tests.contract.test_store import T0, session, user

VERIFIER = "v" * 43 + "-._~0123456789"


def flow(fid: str = "f1", uid: str = "u1", created_at: float = T0) -> FlowStateRecord:
    return FlowStateRecord(
        id=fid,
        auth_code_hash=f"hash-{fid}",
        user_id=uid,
        code_challenge=challenge_of(VERIFIER, "s256"),
        code_challenge_method="s256",
        provider="email",
        authentication_method="password",
        created_at=created_at,
        redirect_to="http://app.test/done?x=1",
    )


@pytest.fixture
def store(make_store: Callable[..., Store]) -> Store:
    store = make_store()
    with store.transaction() as tx:
        tx.insert_user(*user())
        tx.insert_session(session())
    return store


def test_flow_state_round_trip_and_delete(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_flow_state(flow())
    with store.transaction() as tx:
        assert tx.lock_flow_state("hash-f1") == flow()
        assert tx.lock_flow_state("hash-nope") is None
        assert tx.delete_flow_state("f1") is True
        assert tx.delete_flow_state("f1") is False
    with store.transaction() as tx:
        assert tx.lock_flow_state("hash-f1") is None


def test_a_refusal_raised_in_the_transaction_keeps_the_flow_state(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_flow_state(flow())

    def refuse_after_delete() -> None:
        with store.transaction() as tx:
            assert tx.delete_flow_state("f1")
            raise RuntimeError("refused after the delete")

    with pytest.raises(RuntimeError):
        refuse_after_delete()
    with store.transaction() as tx:
        assert tx.lock_flow_state("hash-f1") is not None


def test_old_flow_states_are_deleted_in_batches(store: Store) -> None:
    with store.transaction() as tx:
        for i in range(5):
            tx.insert_flow_state(flow(f"old{i}", created_at=T0 + i))
        tx.insert_flow_state(flow("new", created_at=T0 + 100))
    with store.transaction() as tx:
        assert tx.delete_old_flow_states(created_before=T0 + 50, limit=3) == 3
    with store.transaction() as tx:
        assert tx.delete_old_flow_states(created_before=T0 + 50, limit=3) == 2
        assert tx.delete_old_flow_states(created_before=T0 + 50, limit=3) == 0
        assert tx.lock_flow_state("hash-new") is not None


def test_concurrent_take_of_one_flow_state_succeeds_once(store: Store) -> None:
    """Lock-then-delete, as the PKCE grant does it, from eight threads at once."""
    with store.transaction() as tx:
        tx.insert_flow_state(flow())
    start = threading.Barrier(8)
    taken: list[bool] = []
    errors: list[str] = []

    def take() -> None:
        start.wait()
        try:
            with store.transaction() as tx:
                found = tx.lock_flow_state("hash-f1")
                taken.append(found is not None and tx.delete_flow_state(found.id))
        except Exception as exc:  # a conflict answer is allowed, a second success is not
            errors.append(type(exc).__name__)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert taken.count(True) == 1
    assert set(errors) <= {"StoreConflictError"}


# Through the HTTP API: the flow created by hosted sign-in, redeemed by concurrent requests.


async def test_concurrent_redemptions_of_one_code_give_exactly_one_session(
    make_app: Callable[..., AppHarness],
) -> None:
    app = make_app()
    async with app.client:
        signed_up = await app.signup(password=PASSWORD)
        code = await _code(app, signed_up["user"]["email"])
        body = {"auth_code": code, "code_verifier": VERIFIER}
        answers = await asyncio.gather(
            *(
                app.client.post("/auth/v1/token?grant_type=pkce", json=body, headers=API_VERSION)
                for _ in range(10)
            )
        )
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(200) == 1, statuses
    refused = [r.json()["code"] for r in answers if r.status_code != 200]
    assert set(refused) <= {"flow_state_not_found", "conflict"}, refused


async def test_expiry_counts_from_the_sign_in(make_app: Callable[..., AppHarness]) -> None:
    app = make_app()
    async with app.client:
        signed_up = await app.signup(password=PASSWORD)
        code = await _code(app, signed_up["user"]["email"])
        app.clock.advance(FLOW_STATE_LIFETIME)
        r = await app.client.post(
            "/auth/v1/token?grant_type=pkce",
            json={"auth_code": code, "code_verifier": VERIFIER},
            headers=API_VERSION,
        )
    assert (r.status_code, r.json()["code"]) == (422, "flow_state_expired")


async def _code(app: AppHarness, email: str) -> str:
    from urllib.parse import parse_qs, urlsplit

    challenge = Challenge(challenge_of(VERIFIER, "s256"), "s256")
    r = await app.client.post(
        "/auth/v1/authorize",
        data={
            "email": email,
            "password": PASSWORD,
            "provider": "email",
            "redirect_to": "/done",
            "code_challenge": challenge.value,
            "code_challenge_method": "S256",
        },
    )
    assert r.status_code == 303, r.text
    return parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
