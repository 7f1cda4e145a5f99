"""``storee view rebuild`` and ``rollback`` on the real stack, with a served gateway and a streams worker.

While the rebuild runs, a client keeps submitting stories and reading them back through the gateway:
no request may fail. The gateway follows the pointer without a restart (a document only the rebuilt
generation holds becomes readable after the swap, and unreadable again after the rollback); the view
after the swap equals one built from scratch; the rollback brings the old generation up to date.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pymongo import AsyncMongoClient, MongoClient
from pymongo.database import Database

from gateway.accounts import AccountStore
from ops.bench.kafka_probe import delete_prefixed_topics, ensure_catalog
from ops.bench.stream_worker import Worker, worker_env
from ops.cli import main as storee
from ops.gateway_server import served
from ops.runtime.config import Env
from ops.runtime.view_pointer import collection_names
from ops.view.commands import shadow_factory
from ops.view.digest import EVENTS_REASON, compare
from ops.view.generations import ViewGenerations
from ops.view.rebuild import rebuild, rollback
from schemas.records import Tier
from streams.settings import StreamSettings
from tests.gateway.factories import story_doc
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STORIES_BEFORE = 12


@dataclass
class Stack:
    url: str
    auth: dict[str, str]
    account_id: str
    db: Database
    client: MongoClient
    settings: StreamSettings
    env: dict[str, str]


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, mongo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    ensure_catalog(kafka_bootstrap, prefix)
    db_name = f"t_{prefix[1:-1]}"
    tmp: Path = tmp_path_factory.mktemp("view")
    env = worker_env(kafka_bootstrap, mongo_url, db_name, prefix, tmp / "data", BATCH_SIZE=4)
    env.update(
        OUTPUT_DIR=str(tmp / "out"),
        RATE_LIMIT_USER_PER_MINUTE="100000",
        RATE_LIMIT_ACCOUNT_PER_MINUTE="100000",
        RATE_LIMIT_ACCOUNT_BURST="100000",
    )
    client: MongoClient = MongoClient(mongo_url)
    worker = Worker(env, tmp / "worker.log")
    try:
        worker.start()
        account = asyncio.run(_account(mongo_url, db_name))
        with served(env) as url:
            yield Stack(
                url=url,
                auth={"Authorization": f"Bearer {account[1]}"},
                account_id=account[0],
                db=client[db_name],
                client=client,
                settings=StreamSettings.from_env(Env(env)),
                env=env,
            )
    finally:
        worker.stop()
        client.drop_database(db_name)
        client.close()
        delete_prefixed_topics(kafka_bootstrap, prefix)


async def _account(mongo_url: str, db_name: str) -> tuple[str, str]:
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    try:
        account = await AccountStore(client[db_name]).create(Tier.PREMIUM)
        return account.account_id, account.api_key
    finally:
        await client.close()


class Traffic:
    """Submits a story and reads every story submitted so far, over and over, counting failures."""

    def __init__(self, stack: Stack, story_ids: list[str]) -> None:
        self.stack = stack
        self.story_ids = list(story_ids)
        self.readable = set(story_ids)  # stories seen in the view: a read of one must never fail again
        self.failures: list[str] = []
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(base_url=self.stack.url, headers=self.stack.auth, timeout=10) as http:
            while not self._stop.wait(0.1):
                self._once(http)

    def _once(self, http: httpx.Client) -> None:
        try:
            posted = http.post("/v1/stories", json={"story_text": "A fox. A river."})
            self.requests += 1
            if posted.status_code != 202:
                self.failures.append(f"POST {posted.status_code}: {posted.text[:200]}")
            else:
                self.story_ids.append(posted.json()["story_id"])
            for story_id in list(self.story_ids):
                got = http.get(f"/v1/stories/{story_id}")
                self.requests += 1
                if got.status_code == 200:
                    self.readable.add(story_id)
                elif got.status_code != 404 or story_id in self.readable:
                    self.failures.append(f"GET {story_id} {got.status_code}: {got.text[:200]}")
        except httpx.HTTPError as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")


def _submit(stack: Stack, count: int) -> list[str]:
    with httpx.Client(base_url=stack.url, headers=stack.auth, timeout=10) as http:
        ids = [
            http.post("/v1/stories", json={"story_text": f"Story {i}. It ends."}).json()["story_id"]
            for i in range(count)
        ]
    wait_for(lambda: _all_readable(stack, ids), 60, "the submitted stories in the view")
    return ids


def _status(stack: Stack, story_id: str) -> int:
    return httpx.get(f"{stack.url}/v1/stories/{story_id}", headers=stack.auth, timeout=10).status_code


def _all_readable(stack: Stack, story_ids: list[str]) -> bool:
    return all(_status(stack, story_id) == 200 for story_id in story_ids)


def test_a_rebuild_under_traffic_swaps_readers_and_a_rollback_returns_them(stack: Stack) -> None:
    generations = ViewGenerations(stack.db)
    make_shadow = shadow_factory(stack.settings, stack.db)
    live_group = stack.settings.materializer_group
    before = _submit(stack, STORIES_BEFORE)
    marker = f"marker-{uuid.uuid4().hex[:8]}"  # a document only generation 1 holds
    assert _status(stack, marker) == 404

    with Traffic(stack, before) as traffic:
        result = rebuild(generations, make_shadow, live_group, settle_rounds=10, timeout_s=120)
        stack.db[collection_names(result.generation)[0]].insert_one(story_doc(marker, stack.account_id))
        wait_for(lambda: _status(stack, marker) == 200, 10, "the gateway to read generation 1")
    assert result.swapped and result.comparison.identical, result.comparison.differences
    assert (result.live, result.generation) == (0, 1)
    assert result.comparison.live_stories >= STORIES_BEFORE
    assert generations.pointer().current == 1
    assert traffic.requests > 20
    assert traffic.failures == []
    submitted = traffic.story_ids
    wait_for(lambda: _all_readable(stack, submitted), 60, "every story submitted during the rebuild")
    stack.db[collection_names(1)[0]].delete_one({"_id": marker})

    # The swapped-to view equals one built from scratch, into a database of its own.
    scratch_db = stack.client[f"{stack.db.name}_scratch"]
    try:
        from_scratch = ViewGenerations(scratch_db)

        def identical() -> bool:
            scratch = shadow_factory(stack.settings, scratch_db)(0, f"scratch-{uuid.uuid4().hex[:6]}", None)
            scratch.start()
            try:
                scratch.catch_up(60)
            finally:
                scratch.stop()
            return compare(generations.snapshot(1), from_scratch.snapshot(0)).identical

        wait_for(identical, 120, "generation 1 to equal a view built from scratch", interval=1)
    finally:
        stack.client.drop_database(scratch_db.name)

    # Rollback: generation 0 is brought up to date, then readers move back to it.
    after_swap = _submit(stack, 2)  # applied to generation 1 only
    assert rollback(generations, make_shadow, live_group, timeout_s=120) == (1, 0)
    assert generations.pointer().current == 0 and generations.pointer().previous == 1
    stack.db[collection_names(1)[0]].insert_one(story_doc(marker, stack.account_id))
    wait_for(lambda: _status(stack, marker) == 404, 10, "the gateway to read generation 0 again")
    assert _all_readable(stack, submitted + after_swap)  # none were lost while generation 1 was live
    wait_for(
        lambda: (
            compare(
                generations.snapshot(0), {k: v for k, v in generations.snapshot(1).items() if k != marker}
            ).identical
        ),
        60,
        "generation 0 to hold what generation 1 held",
        interval=1,
    )


def test_verify_only_compares_swaps_nothing_and_exits_2_on_a_difference(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URL", "MONGODB_DATABASE", "TOPIC_PREFIX"):
        monkeypatch.setenv(name, stack.env[name])
    generations = ViewGenerations(stack.db)
    story_id = _submit(stack, 1)[0]
    pointer = generations.pointer()
    stories = stack.db[collection_names(pointer.current)[0]]

    def verify() -> tuple[int, dict]:
        status = storee(["view", "rebuild", "--verify-only", "--json"])
        return status, json.loads(capsys.readouterr().out)

    status, report = verify()
    assert status == 0, report["differences"]
    assert report["identical"] and not report["swapped"]
    assert report["counts"]["live"] == report["counts"]["rebuilt"]
    assert generations.pointer() == pointer  # nothing swapped
    assert report["generation"] not in generations.existing()  # the verify-only build was dropped

    stories.update_one({"_id": story_id}, {"$set": {"title": "tampered"}})  # the live view goes wrong
    try:
        status, report = verify()
    finally:
        stories.update_one({"_id": story_id}, {"$set": {"title": None}})
    assert status == 2
    assert report["differing_stories"] == [story_id]
    (difference,) = report["differences"]
    assert (difference["what"], difference["live"], difference["rebuilt"]) == (
        "story.title",
        '"tampered"',
        "null",
    )
    assert difference["reason"] == EVENTS_REASON
    assert generations.pointer() == pointer
