"""The job view's store on the real MongoDB-wire server: large flushes, revisions, conflicts."""

from __future__ import annotations

import pytest
from pymongo import MongoClient

from schemas.view import TASKS
from streams.view_store import WRITE_CHUNK, JobViewStore

pytestmark = pytest.mark.integration


def _task(story: int, index: int, status: str) -> dict:
    return {"_id": f"s{story}:{index}", "story_id": f"s{story}", "status": status}


@pytest.fixture
def store(mongo_url: str, unique_id: str):  # type: ignore[no-untyped-def]
    # A short socket timeout: a server that hangs on a write must fail this test, not stall the run.
    client: MongoClient = MongoClient(mongo_url, socketTimeoutMS=30_000, serverSelectionTimeoutMS=10_000)
    database = client[f"t_{unique_id}"]
    store = JobViewStore(database)
    store.ensure_indexes()
    yield store
    client.drop_database(database.name)
    client.close()


def test_a_flush_larger_than_one_command_is_written_whole(store: JobViewStore) -> None:
    count = WRITE_CHUNK * 4 + 3  # FerretDB 1.24 hangs on one update command of 100 or more
    queued = [_task(i // 8, i % 8, "queued") for i in range(count)]
    assert store.write([], [(None, doc) for doc in queued]) == set()
    loaded = store.load([f"s{i}" for i in range(count // 8 + 1)])
    old = [doc for docs in loaded.tasks.values() for doc in docs.values()]
    assert len(old) == count
    batched = [(doc, {**doc, "status": "batched"}) for doc in old]
    assert store.write([], batched) == set()
    assert store.tasks.count_documents({"status": "batched"}) == count
    # A replay changes nothing and writes nothing.
    again = store.load([f"s{i}" for i in range(count // 8 + 1)])
    same = [
        (doc, {k: v for k, v in doc.items() if k != "_rev"})
        for d in again.tasks.values()
        for doc in d.values()
    ]
    assert store.write([], same) == set()


def test_a_write_over_a_stale_revision_reports_the_story(store: JobViewStore) -> None:
    doc = _task(1, 0, "queued")
    store.write([], [(None, doc)])
    stored = store.tasks.find_one({"_id": "s1:0"})
    assert stored is not None
    store.write([], [(stored, {**stored, "status": "batched"})])  # another writer got there first
    conflicts = store.write([], [(stored, {**stored, "status": "running"})])
    assert conflicts == {"s1"}
    assert (store.tasks.database[TASKS].find_one({"_id": "s1:0"}) or {}).get("status") == "batched"
