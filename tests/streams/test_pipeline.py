"""A worker on the real broker and MongoDB-wire server: stories flow into batches and the job view."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from ops.runtime.kafka import DurableProducer, make_consumer
from schemas.dlq import DeadLetter
from schemas.events import BatchReady, Event, StoryCompleted
from schemas.ids import now_ms
from schemas.topics import TopicCatalog
from schemas.view import STORIES, TASKS
from streams.metrics import StreamMetrics
from streams.splitting import SplitPolicy, plan_scenes
from streams.view_loop import Materializer, view_topics
from streams.view_store import JobViewStore
from tests.streams.factories import completed, started, story
from tests.streams.harness import (
    CODEC,
    TopicReader,
    Worker,
    committed_offsets,
    delete_prefixed_topics,
    end_offsets,
    ensure_catalog,
    produce,
    produce_raw,
    worker_env,
)
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass
class Pipeline:
    bootstrap: str
    catalog: TopicCatalog
    db: Database
    worker: Worker


@pytest.fixture(scope="module")
def pipeline(kafka_bootstrap: str, mongo_url: str, tmp_path_factory) -> Iterator[Pipeline]:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    catalog = ensure_catalog(kafka_bootstrap, prefix)
    client: MongoClient = MongoClient(mongo_url)
    db_name = f"t_{prefix[1:-1]}"
    tmp = tmp_path_factory.mktemp("streams")
    env = worker_env(
        kafka_bootstrap, mongo_url, db_name, prefix, tmp / "data", BATCH_SIZE=4, VIEW_FLUSH_INTERVAL=0.05
    )
    worker = Worker(env, tmp / "worker.log")
    try:
        worker.start()
        yield Pipeline(kafka_bootstrap, catalog, client[db_name], worker)
    finally:
        worker.stop()
        client.drop_database(db_name)
        client.close()
        delete_prefixed_topics(kafka_bootstrap, prefix)


def live_story(story_id: str, **kwargs):
    """A story submitted now (the factories' fixed 2026-01-01 would be past its deadline)."""
    now = now_ms()
    return story(story_id, event_time=now, submitted_at=now, **kwargs)


def view(db: Database) -> tuple[dict, dict]:
    return {d["_id"]: d for d in db[STORIES].find()}, {d["_id"]: d for d in db[TASKS].find()}


def finish(p: Pipeline, batches: list[BatchReady], at: int) -> None:
    """Play the GPU consumer: start and complete every task of the batches."""
    events: list[Event] = []
    for batch in batches:
        for task in batch.tasks:
            events += [started(task.story_id, task.scene_index, batch.batch_id, at)]
            events += [completed(task.story_id, task.scene_index, batch.batch_id, at + 100)]
    produce(p.bootstrap, p.catalog.task_events, events, key=lambda e: e.story_id)


def test_a_story_flows_to_batches_and_into_the_view(pipeline: Pipeline) -> None:
    p = pipeline
    text = "Style: film noir\nA detective waits. Rain falls.\n\nA door opens. A stranger walks in."
    stories = [
        live_story("flow-a", n_scenes=3),
        live_story("flow-b", text=text, title="Night"),
        live_story("flow-c", n_scenes=0),
    ]
    produce(p.bootstrap, p.catalog.stories_submitted, stories, key=lambda e: e.story_id)
    reader = TopicReader(p.bootstrap, [p.catalog.batches("default", "premium")], f"r-{uuid.uuid4().hex}")
    try:

        def all_batched() -> list[BatchReady]:
            reader.poll()
            batches = reader.events(BatchReady)
            ids = {t.task_id for b in batches for t in b.tasks}
            return batches if ids >= {"flow-a:0", "flow-a:1", "flow-a:2", "flow-b:0", "flow-b:1"} else []

        batches = wait_for(all_batched, 60, "tasks batched")
    finally:
        reader.close()
    assert all(len(b.tasks) <= 4 for b in batches)
    task_ids = [t.task_id for b in {b.batch_id: b for b in batches}.values() for t in b.tasks]
    assert len(task_ids) == len(set(task_ids)) == 5

    def batched_in_view() -> tuple[dict, dict] | None:
        stories_view, tasks_view = view(p.db)
        ok = len(tasks_view) == 5 and all(t["status"] == "batched" for t in tasks_view.values())
        return (stories_view, tasks_view) if ok and "flow-c" in stories_view else None

    stories_view, tasks_view = wait_for(batched_in_view, 60, "tasks batched in the view")
    assert stories_view["flow-b"]["task_count"] == 2
    assert tasks_view["flow-b:0"]["prompt"] == "Night: A detective waits. Rain falls. Style: film noir."
    assert (
        stories_view["flow-c"]["status"] == "failed"
        and stories_view["flow-c"]["error"]["code"] == "empty_story"
    )
    finish(p, batches, at=stories[0].event_time + 1000)

    def completed_in_view() -> tuple[dict, dict] | None:
        stories_view, tasks_view = view(p.db)
        done = all(stories_view[s]["status"] == "completed" for s in ("flow-a", "flow-b"))
        return (stories_view, tasks_view) if done else None

    stories_view, tasks_view = wait_for(completed_in_view, 60, "stories completed in the view")
    assert stories_view["flow-a"]["progress"] == 1.0
    assert [o["scene_index"] for o in stories_view["flow-a"]["outputs"]] == [0, 1, 2]
    assert all(t["status"] == "completed" for t in tasks_view.values())
    events = TopicReader(p.bootstrap, [p.catalog.task_events], f"r-{uuid.uuid4().hex}")
    try:
        done = wait_for(
            lambda: (
                {e.story_id for e in (events.poll(), events.events(StoryCompleted))[1]}
                >= {"flow-a", "flow-b", "flow-c"}
            ),
            60,
            "StoryCompleted for every story",
        )
        assert done
        assert len({e.event_id for e in events.events(StoryCompleted)}) == 3
    finally:
        events.close()


def test_garbage_bytes_land_in_the_dlq_and_the_pipeline_keeps_going(pipeline: Pipeline) -> None:
    p = pipeline
    produce_raw(p.bootstrap, p.catalog.stories_submitted, b"junk-1", b"\x00not avro")
    produce_raw(p.bootstrap, p.catalog.tasks_requested, b"junk-2", b"\xc3\x01" + b"\x00" * 12)
    produce_raw(p.bootstrap, p.catalog.task_events, b"junk-3", b"garbage")
    produce(
        p.bootstrap,
        p.catalog.stories_submitted,
        [live_story("after-junk", n_scenes=1)],
        key=lambda e: e.story_id,
    )
    reader = TopicReader(p.bootstrap, [p.catalog.dlq], f"r-{uuid.uuid4().hex}")
    try:
        # Each bad record is dead-lettered once, by the processor that owns its topic: the splitter
        # stories.submitted's, the batcher tasks.requested's, the materializer task.events' (the
        # materializer also reads the first two, and skips what their owners dead-letter).
        expected = {
            (b"junk-1", "streams.splitter"),
            (b"junk-2", "streams.batcher"),
            (b"junk-3", "streams.materializer"),
        }

        def letters() -> dict[tuple[bytes, str], DeadLetter] | None:
            found = {}
            for record in reader.poll():
                letter = DeadLetter.from_headers(record.headers())
                found[(record.key(), letter.service)] = letter
            return found if expected <= set(found) else None

        found = wait_for(letters, 60, "three dead letters")
        assert {key for key in found if key[0].startswith(b"junk-")} == expected
        assert found[(b"junk-1", "streams.splitter")].origin_topic == p.catalog.stories_submitted
        assert all("CodecError" in letter.error_class for letter in found.values())
    finally:
        reader.close()
    wait_for(
        lambda: p.db[TASKS].find_one({"_id": "after-junk:0", "status": "batched"}),
        60,
        "the next story batched",
    )


def assert_same_view(after: tuple[dict, dict], before: tuple[dict, dict]) -> None:
    for kind, new, old in (("stories", after[0], before[0]), ("tasks", after[1], before[1])):
        assert sorted(new) == sorted(old), kind
        for doc_id, doc in old.items():
            changed = {k: (v, new[doc_id].get(k)) for k, v in doc.items() if new[doc_id].get(k) != v}
            assert not changed, f"{kind} {doc_id}: {changed}"


def rebuild(p: Pipeline, db: Database) -> None:
    """Materialize every view topic from the beginning into ``db`` with a fresh consumer group."""
    group = f"rebuild-{uuid.uuid4().hex}"
    materializer = Materializer(
        consumer_factory=lambda: make_consumer(p.bootstrap, group),
        catalog=p.catalog,
        codec=CODEC,
        store=JobViewStore(db),
        producer=DurableProducer(p.bootstrap),
        metrics=StreamMetrics(),
        count_scenes=lambda s: len(plan_scenes(s, SplitPolicy())),
    )
    ends = {tp: end for tp, end in end_offsets(p.bootstrap, view_topics(p.catalog)).items() if end > 0}
    stop = threading.Event()
    thread = threading.Thread(target=materializer.run, args=(stop,))
    thread.start()
    try:

        def caught_up() -> bool:
            done = committed_offsets(p.bootstrap, group, list(ends))
            return all(done[tp] >= end for tp, end in ends.items())

        wait_for(caught_up, 90, "the rebuild to reach the end of every view topic", interval=0.3)
    finally:
        stop.set()
        thread.join(30)


def test_a_replay_leaves_the_view_unchanged_and_a_rebuild_ends_identical(
    pipeline: Pipeline, mongo_client
) -> None:
    p = pipeline
    produce(
        p.bootstrap,
        p.catalog.stories_submitted,
        [live_story("replay-a", n_scenes=2)],
        key=lambda e: e.story_id,
    )
    reader = TopicReader(p.bootstrap, [p.catalog.batches("default", "premium")], f"r-{uuid.uuid4().hex}")
    try:
        batches = wait_for(
            lambda: [
                b for b in (reader.poll(), reader.events(BatchReady))[1] if b.tasks[0].story_id == "replay-a"
            ],
            60,
            "replay-a batched",
        )
    finally:
        reader.close()
    finish(p, batches[:1], at=batches[0].event_time + 10)
    # At rest: completed, and its own StoryCompleted read back (the run's end in the view).
    wait_for(
        lambda: (p.db[STORIES].find_one({"_id": "replay-a", "status": "completed"}) or {}).get("_ends"),
        60,
        "replay-a completed and its StoryCompleted read back",
    )
    before = view(p.db)
    # Replay: every view topic again, from the beginning, into the same view.
    rebuild(p, p.db)
    assert_same_view(view(p.db), before)
    # Rebuild: drop the view and materialize it from the topics alone.
    fresh = mongo_client[f"{p.db.name}_rebuilt"]
    try:
        rebuild(p, fresh)
        assert_same_view(view(fresh), before)
    finally:
        mongo_client.drop_database(fresh.name)
