"""A time-window replay of the materializer, on the real broker and MongoDB-wire server, leaves the job view
identical: ``storee replay <group> --to-datetime T --execute`` moves the group back to the first record at
or after T, the materializer reduces those records again, and every story and task document is what it
was (the store's revision counter aside: a rewrite of the same document is still a write)."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator

import pytest

from ops.cli import main
from ops.replay.reader import ReplayReader
from ops.runtime.kafka import DurableProducer, make_consumer
from schemas.events import BatchReady, Event
from schemas.topics import TopicCatalog
from schemas.view import STORIES, TASKS
from streams.batching import make_batch
from streams.metrics import StreamMetrics
from streams.splitting import split
from streams.view_loop import Materializer, view_topics
from streams.view_store import JobViewStore
from tests.ops.test_replay_integration import _committed
from tests.streams.factories import POLICY, T0, completed, started, story
from tests.streams.harness import CODEC
from tests.streams.test_view import count_scenes
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def _story_events(story_id: str, offset_s: int) -> list[tuple[str, Event]]:
    """A two-scene story from submission to completion, each event with the catalog topic it belongs on."""
    submitted = story(story_id, n_scenes=2)
    tasks = split(submitted, POLICY, now=T0 + offset_s + 10)
    batch = make_batch(tasks, now=T0 + offset_s + 20)
    ended = [started(story_id, i, batch.batch_id, T0 + offset_s + 30 + i) for i in range(2)] + [
        completed(story_id, i, batch.batch_id, T0 + offset_s + 60 + i) for i in range(2)
    ]
    return [
        ("stories", submitted),
        *(("tasks", task) for task in tasks),
        ("batches", batch),
        *(("events", event) for event in ended),
    ]


def _produce(producer: DurableProducer, catalog: TopicCatalog, events: list[tuple[str, Event]]) -> None:
    topics = {
        "stories": catalog.stories_submitted,
        "tasks": catalog.tasks_requested,
        "batches": catalog.batches("default", "free"),
        "events": catalog.task_events,
    }
    for where, event in events:
        key = event.batch_id if isinstance(event, BatchReady) else event.story_id  # type: ignore[attr-defined]
        producer.produce(topics[where], CODEC.encode(event), key=key)
    assert producer.flush(30) == 0


def _view(db) -> tuple[dict, dict]:  # type: ignore[no-untyped-def]
    strip = lambda doc: {k: v for k, v in doc.items() if k != "_rev"}  # noqa: E731
    return (
        {doc["_id"]: strip(doc) for doc in db[STORIES].find({})},
        {doc["_id"]: strip(doc) for doc in db[TASKS].find({})},
    )


@pytest.fixture
def running_materializer(kafka_bootstrap, mongo_db, topic_prefix, provision_catalog) -> Iterator:  # type: ignore[no-untyped-def]
    """Start (and restart) a real materializer thread on the test's topics and database."""
    catalog = provision_catalog(TopicCatalog.build(prefix=topic_prefix, pools=("default",)))
    group = f"{topic_prefix}view"
    running: list[tuple[threading.Event, threading.Thread]] = []

    def start() -> None:
        materializer = Materializer(
            consumer_factory=lambda: make_consumer(kafka_bootstrap, group),
            catalog=catalog,
            codec=CODEC,
            store=JobViewStore(mongo_db),
            producer=DurableProducer(kafka_bootstrap),
            metrics=StreamMetrics(),
            count_scenes=count_scenes,
            flush_s=0.05,
        )
        stop = threading.Event()
        thread = threading.Thread(target=materializer.run, args=(stop,), daemon=True)
        thread.start()
        running.append((stop, thread))

    def stop() -> None:
        while running:
            event, thread = running.pop()
            event.set()
            thread.join(30)
            assert not thread.is_alive(), "the materializer did not stop"

    yield catalog, group, start, stop
    stop()


def test_a_time_window_replay_of_the_materializer_leaves_the_view_identical(
    running_materializer, kafka_bootstrap, mongo_db, capsys, monkeypatch
) -> None:
    catalog, group, start, stop = running_materializer
    # The stage as `storee replay materializer` finds it: this deployment's prefix and group.
    monkeypatch.setenv("TOPIC_PREFIX", catalog.prefix)
    monkeypatch.setenv("MATERIALIZER_GROUP", group)
    producer = DurableProducer(kafka_bootstrap)
    try:
        _produce(producer, catalog, _story_events("early-1", 0) + _story_events("early-2", 100))
        time.sleep(0.05)  # the window's start lies strictly between the two halves' record timestamps
        window_start = dt.datetime.now(dt.UTC)
        time.sleep(0.05)
        _produce(producer, catalog, _story_events("late-1", 200) + _story_events("late-2", 300))
    finally:
        producer.close()

    start()
    stories = ("early-1", "early-2", "late-1", "late-2")

    def all_completed() -> bool:
        docs = {doc["_id"]: doc["status"] for doc in mongo_db[STORIES].find({})}
        return all(docs.get(s) == "completed" for s in stories)

    wait_for(all_completed, 60, "every story completed in the view")
    # Settled: the group has committed everything it read (StoryCompleted events included).
    wait_for(lambda: _settled(kafka_bootstrap, group, catalog), 60, "the materializer's commits to settle")
    stop()
    before = _view(mongo_db)
    committed = _committed(kafka_bootstrap, group)

    iso = window_start.replace(tzinfo=None).isoformat(timespec="milliseconds")
    status = main(
        [
            "replay",
            "materializer",
            "--to-datetime",
            iso,
            "--execute",
            "--json",
            "--bootstrap-servers",
            kafka_bootstrap,
        ]
    )
    document = json.loads(capsys.readouterr().out)
    assert status == 0 and document["executed"], document
    (plan,) = document["plans"]
    # The window holds the late stories' records and the StoryCompleted events that came after them.
    assert plan["reprocess"] >= 2 * len(_story_events("late-1", 0)), plan
    assert plan["group"] == group and plan["effects"], plan
    moved_back = _committed(kafka_bootstrap, group)
    assert any(moved_back.get(tp, 0) < o for tp, o in committed.items()), (moved_back, committed)

    start()
    # Consumed again up to where it was (and past the StoryCompleted events the replay may re-send).
    wait_for(
        lambda: (
            _settled(kafka_bootstrap, group, catalog)
            and all(_committed(kafka_bootstrap, group).get(tp, 0) >= o for tp, o in committed.items())
        ),
        60,
        "the replayed window to be consumed",
    )
    stop()
    assert _view(mongo_db) == before


def _settled(bootstrap: str, group: str, catalog: TopicCatalog) -> bool:
    """Whether the group's commits reached the end of every partition of the view's topics."""
    reader = ReplayReader(bootstrap)
    try:
        states = reader.states(view_topics(catalog), reader.committed(group))
    finally:
        reader.close()
    return all((state.committed or state.log_start) >= state.log_end for state in states)
