"""Shared limits: they trip, say when to retry, recover, and hold across gateway processes.

Each ``SharedLimits`` (and each app) keeps its own leases, exactly as separate processes do; only the
MongoDB collection is shared. A fake clock moves time instead of sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from pymongo import AsyncMongoClient

from gateway.accounts import Principal
from gateway.exceptions import RateLimited
from gateway.limits import SharedLimits
from schemas.records import Tier

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self, now: float = 1_700_000_080.0) -> None:  # 40 s into a minute
        self.now = now

    def __call__(self) -> float:
        return self.now


def run_with_limits(mongo_url: str, database: str, body: Callable[..., Awaitable[None]]) -> None:
    async def main() -> None:
        client: AsyncMongoClient = AsyncMongoClient(mongo_url)
        try:
            await body(client[database]["rate_limits"])
        finally:
            await client.close()

    asyncio.run(main())


async def allowed(limits: SharedLimits, principal: Principal, attempts: int) -> int:
    count = 0
    for _ in range(attempts):
        try:
            await limits.charge(principal)
            count += 1
        except RateLimited:
            pass
    return count


def test_user_window_trips_recovers_and_is_shared(mongo_url, mongo_db):
    clock = Clock()
    user = Principal("acct", Tier.FREE, "key-1")

    async def body(collection) -> None:
        def make() -> SharedLimits:
            return SharedLimits(
                collection,
                user_per_minute=10,
                account_per_minute=0,
                account_burst=1,
                clock=clock,
            )

        first, second = make(), make()  # two gateway processes
        assert await allowed(first, user, 6) == 6
        assert await allowed(second, user, 6) == 4  # the other process sees the first one's requests
        with pytest.raises(RateLimited) as caught:
            await first.charge(user)
        assert caught.value.reason == "user" and 1 <= caught.value.retry_after <= 60
        # The next minute starts: the last one still weighs (1 - 0.1) * 10 = 9, so one more fits.
        clock.now += 26
        assert await allowed(second, user, 3) == 1
        # Another user is unaffected.
        assert await allowed(first, Principal("acct", Tier.FREE, "key-2"), 3) == 3
        # Two minutes later, the window is empty again.
        clock.now += 120
        assert await allowed(first, user, 12) == 10

    run_with_limits(mongo_url, mongo_db.name, body)


def test_account_bucket_allows_a_burst_then_the_rate_and_is_shared(mongo_url, mongo_db):
    clock = Clock()
    account = "acct-bucket"

    async def body(collection) -> None:
        def make() -> SharedLimits:
            return SharedLimits(
                collection,
                user_per_minute=0,
                account_per_minute=60,
                account_burst=5,  # noqa: E731
                clock=clock,
            )

        first, second = make(), make()
        users = [Principal(account, Tier.PREMIUM, f"key-{i}") for i in range(10)]
        assert await allowed(first, users[0], 3) + await allowed(second, users[1], 3) == 5  # the burst
        assert await first.purge() == 0  # no claim has expired yet
        with pytest.raises(RateLimited) as caught:
            await second.charge(users[2])
        assert caught.value.reason == "account" and caught.value.retry_after == 1
        clock.now += 2.0  # 60/minute: two tokens back
        assert await allowed(second, users[3], 5) == 2
        clock.now += 600  # a long pause refills only up to the burst
        assert await allowed(first, users[4], 10) == 5
        clock.now += 3600
        assert await first.purge() == 12
        assert await collection.count_documents({}) == 0

    run_with_limits(mongo_url, mongo_db.name, body)


def test_leases_never_let_processes_exceed_a_larger_limit(mongo_url, mongo_db):
    clock = Clock()
    user = Principal("acct", Tier.FREE, "busy")

    async def body(collection) -> None:
        processes = [
            SharedLimits(collection, user_per_minute=500, account_per_minute=0, account_burst=1, clock=clock)
            for _ in range(3)
        ]
        assert processes[0]._user_lease == 10  # leases are in play
        counts = await asyncio.gather(*(allowed(p, user, 300) for p in processes))
        # Leased but unspent units still count, so the total may fall short of 500 but never exceed it.
        assert 500 - 3 * 15 <= sum(counts) <= 500

    run_with_limits(mongo_url, mongo_db.name, body)


def test_http_429_with_retry_after_then_recovery(make_gateway, catalog):
    clock = Clock()
    gateway = make_gateway(
        clock=clock, user_limit_per_minute=3, account_rate_per_minute=600, account_burst=100
    )
    other = make_gateway(clock=clock, user_limit_per_minute=3, account_rate_per_minute=600, account_burst=100)
    account = gateway.account()
    headers = gateway.headers(account)
    statuses = [gateway.client.get("/v1/stories", headers=headers).status_code for _ in range(2)]
    statuses.append(other.client.get("/v1/stories", headers=headers).status_code)
    assert statuses == [200, 200, 200]
    refused = other.client.get("/v1/stories", headers=headers)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    clock.now += 180
    assert gateway.client.get("/v1/stories", headers=headers).status_code == 200
    assert (
        'storee_gateway_rejections_total{reason="rate_limit_user"} 1.0' in other.client.get("/metrics").text
    )
