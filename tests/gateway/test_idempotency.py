"""Idempotency-Key expiry and takeover, on the real MongoDB-wire server and the real broker.

An expired key never revives its old story id: the next acceptance gets a fresh one. A reservation
whose process died mid-publish is retried with the same story id. Races between gateway processes
(separate clients on one database, as separate processes would have) leave exactly one winner.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from gateway.exceptions import Conflict
from gateway.idempotency import IDEMPOTENCY_KEYS, Earlier, IdempotencyRecords, Reservation, fingerprint
from gateway.validation import parse_story
from tests.gateway.conftest import consume

pytestmark = pytest.mark.integration

BODY = {"scenes": [{"prompt": "a lighthouse in a storm"}]}
TTL_S, LEASE_S = 600, 15.0


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def post(gateway, headers, body=BODY):
    response = gateway.client.post("/v1/stories", headers=headers, json=body)
    assert response.status_code == 202, response.text
    return response


def test_a_key_reused_after_it_expired_gets_a_new_story_id(make_gateway, catalog, kafka_bootstrap):
    clock = Clock()
    gateway = make_gateway(clock=clock, idempotency_ttl_s=TTL_S)
    headers = gateway.headers(gateway.account(), **{"Idempotency-Key": "order-7"})
    first = post(gateway, headers)
    clock.now += TTL_S - 1  # a retry within the TTL: the same story, no second event
    retry = post(gateway, headers)
    assert retry.json()["story_id"] == first.json()["story_id"]
    assert retry.headers["idempotent-replayed"] == "true"
    clock.now += 2  # the key has expired (not yet purged): a new acceptance, a new story
    after = post(gateway, headers)
    assert "idempotent-replayed" not in after.headers
    assert after.json()["story_id"] != first.json()["story_id"]
    # The new acceptance is remembered in turn, from when it was accepted.
    clock.now += TTL_S - 1
    assert post(gateway, headers).json()["story_id"] == after.json()["story_id"]
    events = consume(kafka_bootstrap, catalog.stories_submitted)
    assert [e.story_id for e in events] == [first.json()["story_id"], after.json()["story_id"]]
    assert {e.idempotency_key for e in events} == {"order-7"}


def test_an_expired_record_edited_or_purged_is_forgotten(make_gateway, catalog, kafka_bootstrap, mongo_db):
    gateway = make_gateway()
    headers = gateway.headers(gateway.account(), **{"Idempotency-Key": "k"})
    first = post(gateway, headers).json()["story_id"]
    records = mongo_db[IDEMPOTENCY_KEYS]
    assert records.update_one({"story_id": first}, {"$set": {"expires_at": 0}}).modified_count == 1
    # Expired: even another body is a new acceptance, not a conflict.
    second = post(gateway, headers, {"story_text": "another story"}).json()["story_id"]
    assert second != first
    records.update_one({"story_id": second}, {"$set": {"expires_at": 0}})
    state = gateway.client.app.state.gateway
    assert gateway.client.portal.call(state.idempotency.purge) >= 1
    assert records.count_documents({}) == 0
    third = post(gateway, headers).json()["story_id"]
    assert len({first, second, third}) == 3
    events = consume(kafka_bootstrap, catalog.stories_submitted)
    assert [e.story_id for e in events] == [first, second, third]


def test_a_publish_that_crashed_is_retried_with_the_same_story_id(make_gateway, catalog, kafka_bootstrap):
    clock = Clock()
    gateway = make_gateway(clock=clock)
    account = gateway.account()
    headers = gateway.headers(account, **{"Idempotency-Key": "crash"})
    state = gateway.client.app.state.gateway
    # A process reserved the key, then died before publishing (or before confirming).
    request_hash = fingerprint(parse_story(BODY, gateway.settings).canonical())
    crashed = gateway.client.portal.call(state.idempotency.reserve, account.account_id, "crash", request_hash)
    assert isinstance(crashed, Reservation)
    busy = gateway.client.post("/v1/stories", headers=headers, json=BODY)
    assert busy.status_code == 409 and busy.json()["error"]["field"] == "Idempotency-Key"
    clock.now += 60  # its lease ran out
    retried = post(gateway, headers)
    assert retried.json()["story_id"] == crashed.story_id
    assert "idempotent-replayed" not in retried.headers
    again = post(gateway, headers)
    assert again.json()["story_id"] == crashed.story_id and again.headers["idempotent-replayed"] == "true"
    events = consume(kafka_bootstrap, catalog.stories_submitted)
    assert [e.story_id for e in events] == [crashed.story_id]


# -- races between processes --------------------------------------------------------------------------


def processes(
    mongo_url: str, database: str, clock: Clock, body: Callable[[list[IdempotencyRecords]], Awaitable[None]]
) -> None:
    """Run ``body`` with three ``IdempotencyRecords``, each on its own client, as three gateways."""

    async def main() -> None:
        clients: list[AsyncMongoClient] = [AsyncMongoClient(mongo_url) for _ in range(3)]
        try:
            await body(
                [IdempotencyRecords(c[database], ttl_s=TTL_S, lease_s=LEASE_S, clock=clock) for c in clients]
            )
        finally:
            for client in clients:
                await client.close()

    asyncio.run(main())


async def outcomes(calls: list[Awaitable[Any]]) -> tuple[list[Reservation], list[Any]]:
    """Run ``calls`` at once: the reservations made, and every other result or Conflict."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, Conflict):
            raise result
    won = [r for r in results if isinstance(r, Reservation)]
    return won, [r for r in results if not isinstance(r, Reservation)]


ROUNDS = 5


def test_racing_first_reservations_leave_one_winner(mongo_url, mongo_db):
    async def body(gateways: list[IdempotencyRecords]) -> None:
        for round_ in range(ROUNDS):
            won, lost = await outcomes([g.reserve("acct", f"k{round_}", "h") for g in gateways * 2])
            assert len(won) == 1 and all(isinstance(r, Conflict) for r in lost)

    processes(mongo_url, mongo_db.name, Clock(), body)


def test_racing_reservations_of_an_expired_key_draw_one_new_story_id(mongo_url, mongo_db):
    clock = Clock()

    async def body(gateways: list[IdempotencyRecords]) -> None:
        for round_ in range(ROUNDS):
            key = f"k{round_}"
            old = await gateways[0].reserve("acct", key, "h")
            assert isinstance(old, Reservation)
            await gateways[0].confirm("acct", key, old, 1)
            clock.now += TTL_S + 1
            # Two processes purge while four requests (with different bodies) reuse the key at once.
            calls = [g.reserve("acct", key, f"h{i}") for i, g in enumerate(gateways * 2)]
            won, lost = await outcomes([*calls, gateways[1].purge(), gateways[2].purge()])
            assert len(won) == 1, (won, lost)
            assert won[0].story_id != old.story_id
            assert all(isinstance(r, Conflict | int) for r in lost)
            record = mongo_db[IDEMPOTENCY_KEYS].find_one({"_id": f"acct:{key}"})
            assert record["story_id"] == won[0].story_id and record["state"] == "pending"

    processes(mongo_url, mongo_db.name, clock, body)


def test_racing_takeovers_of_a_crashed_reservation_keep_its_story_id(mongo_url, mongo_db):
    clock = Clock()

    async def body(gateways: list[IdempotencyRecords]) -> None:
        for round_ in range(ROUNDS):
            key = f"k{round_}"
            crashed = await gateways[0].reserve("acct", key, "h")
            assert isinstance(crashed, Reservation)
            clock.now += LEASE_S + 1
            won, lost = await outcomes([g.reserve("acct", key, "h") for g in gateways * 2])
            assert len(won) == 1 and won[0].story_id == crashed.story_id
            assert all(isinstance(r, Conflict) for r in lost)
            # The process that crashed cannot release the reservation another one now holds.
            await gateways[0].release("acct", key, crashed)
            await gateways[1].confirm("acct", key, won[0], 2)
            assert await gateways[2].reserve("acct", key, "h") == Earlier(crashed.story_id, 2)

    processes(mongo_url, mongo_db.name, clock, body)
