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
    task_ids = [doc["_id"] for doc in queued]
    loaded = store.load([f"s{i}" for i in range(count // 8 + 1)], task_ids)
    old = [doc for docs in loaded.tasks.values() for doc in docs.values()]
    assert len(old) == count
    batched = [(doc, {**doc, "status": "batched"}) for doc in old]
    assert store.write([], batched) == set()
    assert store.tasks.count_documents({"status": "batched"}) == count
    # A replay changes nothing and writes nothing.
    again = store.load([f"s{i}" for i in range(count // 8 + 1)], task_ids)
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


def test_tasks_are_found_by_the_ids_their_story_lists(store: JobViewStore) -> None:
    story = {"_id": "s1", "_tasks": ["s1:0", "s1:1"]}
    tasks = [_task(1, 0, "queued"), _task(1, 1, "queued"), _task(1, 2, "queued")]
    store.write([(None, story)], [(None, doc) for doc in tasks])
    # s1:2 is not listed: as if a flush wrote it and crashed before it wrote the story.
    assert sorted(store.load(["s1"]).tasks["s1"]) == ["s1:0", "s1:1"]
    # The replayed flush names it, so it is found.
    assert sorted(store.load(["s1"], ["s1:2"]).tasks["s1"]) == ["s1:0", "s1:1", "s1:2"]


def test_a_story_written_before_tasks_were_listed_finds_them_by_story_id(store: JobViewStore) -> None:
    store.write([(None, {"_id": "s2"})], [(None, _task(2, index, "queued")) for index in range(3)])
    loaded = store.load(["s2", "missing"])
    assert sorted(loaded.tasks["s2"]) == ["s2:0", "s2:1", "s2:2"]
    assert loaded.tasks["missing"] == {} and "missing" not in loaded.stories


def test_a_retried_storys_documents_round_trip_through_the_server(store: JobViewStore) -> None:
    # Every bookkeeping shape a story with two runs holds (FerretDB refuses arrays nested in arrays).
    from tests.streams.test_view_runs import facts_of, first_run, reduce_all, second_run

    tasks, events = first_run()
    *_, first_end = reduce_all(facts_of(events))
    story_doc, task_docs, _ = reduce_all(facts_of([*events, *first_end, *second_run(tasks[2])]))
    assert story_doc["_runs"] and story_doc["_ends"] and story_doc["attempts"]
    assert store.write([(None, story_doc)], [(None, doc) for doc in task_docs.values()]) == set()
    loaded = store.load(["s1"], list(task_docs))
    stored = {k: v for k, v in loaded.stories["s1"].items() if k != "_rev"}
    assert stored == {k: v for k, v in story_doc.items() if k != "_rev"}
    assert {k: v for k, v in loaded.tasks["s1"]["s1:2"].items() if k != "_rev"} == {
        k: v for k, v in task_docs["s1:2"].items() if k != "_rev"
    }
