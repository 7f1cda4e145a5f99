"""Webhook secrets: made with the account and printed once, rotated with a grace, pruned once retired."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from pymongo import AsyncMongoClient

from gateway import accounts
from gateway.accounts import AccountStore
from gateway.exceptions import Conflict, NotFound
from ops.cli import main as storee
from schemas.ids import PROBE_ACCOUNT, now_ms
from schemas.records import Tier
from schemas.webhook_secrets import live
from streams.webhook_signing import parse_secret
from tests.gateway.environment import gateway_env

pytestmark = pytest.mark.integration

T = TypeVar("T")
HOUR_MS = 3_600_000


def with_store(settings, action: Callable[[AccountStore], Awaitable[T]]) -> T:
    async def run() -> T:
        client: AsyncMongoClient = AsyncMongoClient(str(settings.mongodb_url))
        try:
            return await action(AccountStore(client[settings.mongodb_database]))
        finally:
            await client.close()

    return asyncio.run(run())


def stored(mongo_db, account_id: str) -> list[dict[str, Any]]:
    return mongo_db.webhook_secrets.find_one({"_id": account_id})["secrets"]


def test_an_account_is_created_with_one_webhook_secret(settings, mongo_db):
    account = with_store(settings, lambda store: store.create(Tier.FREE, "hooks"))
    assert len(parse_secret(account.webhook_secret).key) == 32
    [entry] = stored(mongo_db, account.account_id)
    assert entry["secret"] == account.webhook_secret and entry["retires_at"] is None
    assert account.webhook_secret not in repr(account) and account.api_key not in repr(account)


def test_a_rotation_signs_with_both_secrets_until_the_grace_ends(settings, mongo_db):
    account = with_store(settings, lambda store: store.create(Tier.FREE))
    before = now_ms()
    rotated = with_store(settings, lambda s: s.rotate_webhook_secret(account.account_id, grace_s=3600))
    after = now_ms()
    new, old = stored(mongo_db, account.account_id)
    assert new == {"secret": rotated.webhook_secret, "created_at": new["created_at"], "retires_at": None}
    assert old["secret"] == account.webhook_secret
    assert before + HOUR_MS <= old["retires_at"] <= after + HOUR_MS
    assert [life.retires_at for life in rotated.live] == [None, old["retires_at"]]
    assert rotated.webhook_secret not in repr(rotated)
    # What the delivery service signs with: both now, the new one alone after the grace.
    assert len(live(stored(mongo_db, account.account_id), after)) == 2
    assert len(live(stored(mongo_db, account.account_id), old["retires_at"])) == 1


def test_a_rotation_prunes_retired_secrets_and_no_grace_ends_the_old_ones_now(settings, mongo_db):
    account = with_store(settings, lambda store: store.create(Tier.FREE))
    mongo_db.webhook_secrets.update_one(
        {"_id": account.account_id},
        {"$push": {"secrets": {"secret": "whsec_retired", "created_at": 1, "retires_at": 2}}},
    )
    rotated = with_store(settings, lambda s: s.rotate_webhook_secret(account.account_id, grace_s=60))
    assert [e["secret"] for e in stored(mongo_db, account.account_id)] == [
        rotated.webhook_secret,
        account.webhook_secret,
    ]
    final = with_store(settings, lambda s: s.rotate_webhook_secret(account.account_id, grace_s=0))
    assert [e["secret"] for e in stored(mongo_db, account.account_id)] == [final.webhook_secret]
    assert with_store(settings, lambda s: s.webhook_signing(account.account_id)) == final.live
    assert len(final.live) == 1


def test_racing_rotations_all_land(settings, mongo_db):
    account = with_store(settings, lambda store: store.create(Tier.FREE))

    async def three(store: AccountStore) -> list[Any]:
        rotate = store.rotate_webhook_secret
        return await asyncio.gather(*(rotate(account.account_id, grace_s=60) for _ in range(3)))

    secrets = {r.webhook_secret for r in with_store(settings, three)}
    kept = [e["secret"] for e in stored(mongo_db, account.account_id)]
    assert len(kept) == 4 and secrets | {account.webhook_secret} == set(kept)


def test_an_account_from_before_webhook_secrets_gets_its_first_by_rotation(settings, mongo_db):
    account = with_store(settings, lambda store: store.create(Tier.FREE))
    mongo_db.webhook_secrets.delete_one({"_id": account.account_id})
    assert with_store(settings, lambda s: s.webhook_signing(account.account_id)) == ()
    rotated = with_store(settings, lambda s: s.rotate_webhook_secret(account.account_id, grace_s=60))
    assert [e["secret"] for e in stored(mongo_db, account.account_id)] == [rotated.webhook_secret]


@pytest.mark.parametrize("account_id", ["acct_nobody", PROBE_ACCOUNT])
def test_no_secret_for_an_account_that_is_not_there_or_is_the_probe(settings, mongo_db, account_id):
    with pytest.raises(NotFound):
        with_store(settings, lambda s: s.rotate_webhook_secret(account_id, grace_s=60))
    with pytest.raises(NotFound):
        with_store(settings, lambda s: s.webhook_signing(account_id))
    assert mongo_db.webhook_secrets.count_documents({}) == 0


def test_the_commands_print_each_secret_once_and_the_status_none(settings, mongo_db, monkeypatch, capsys):
    for name, value in gateway_env(settings).items():
        monkeypatch.setenv(name, value)
    assert storee(["accounts", "create", "--tier", "premium", "--name", "cli"]) == 0
    printed = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines() if ": " in line)
    account_id, first = printed["account_id"].strip(), printed["webhook_secret"].strip()
    assert printed["api_key"].strip().startswith("sk_") and first.startswith("whsec_")
    assert [e["secret"] for e in stored(mongo_db, account_id)] == [first]

    assert storee(["accounts", "rotate-webhook-secret", account_id, "--grace", "90"]) == 0
    out = capsys.readouterr().out
    [second] = stored(mongo_db, account_id)[:1]
    assert out.count("whsec_") == 1 and second["secret"] in out and first not in out
    assert "retires" in out and "no end" in out

    assert storee(["accounts", "webhook-signing", account_id]) == 0
    out = capsys.readouterr().out
    assert "2 live webhook secrets" in out and "whsec_" not in out

    assert storee(["accounts", "webhook-signing", "acct_nobody"]) == 1
    assert "no account 'acct_nobody'" in capsys.readouterr().err


def test_a_lock_left_by_a_dead_rotation_is_taken_over_and_a_live_one_waited_for(
    settings, mongo_db, monkeypatch
):
    account = with_store(settings, lambda store: store.create(Tier.FREE))
    mongo_db.webhook_secret_locks.insert_one({"_id": account.account_id, "token": "dead", "expires_at": 1})
    rotated = with_store(settings, lambda s: s.rotate_webhook_secret(account.account_id, grace_s=60))
    assert stored(mongo_db, account.account_id)[0]["secret"] == rotated.webhook_secret
    assert mongo_db.webhook_secret_locks.count_documents({}) == 0

    monkeypatch.setattr(accounts, "_LOCK_WAIT_S", 0.2)
    lease = now_ms() + 60_000
    mongo_db.webhook_secret_locks.insert_one(
        {"_id": account.account_id, "token": "busy", "expires_at": lease}
    )
    with pytest.raises(Conflict, match="under way"):
        with_store(settings, lambda s: s.rotate_webhook_secret(account.account_id, grace_s=60))
    assert len(stored(mongo_db, account.account_id)) == 2
