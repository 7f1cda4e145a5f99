"""The materializer on the real broker and MongoDB-wire server: its cache never loses others' work."""

from __future__ import annotations

import pytest

from ops.runtime.kafka import DurableProducer, make_consumer
from schemas.topics import TopicCatalog
from schemas.view import STORIES, TASKS
from streams.batching import make_batch
from streams.metrics import StreamMetrics
from streams.splitting import split
from streams.view import reduce_story
from streams.view_facts import expand
from streams.view_loop import Materializer
from streams.view_store import JobViewStore
from tests.streams.factories import POLICY, T0, completed, params, started, story
from tests.streams.harness import CODEC
from tests.streams.test_view import count_scenes

pytestmark = pytest.mark.integration


@pytest.fixture
def make_materializer(kafka_bootstrap, mongo_db, topic_prefix, provision_catalog):  # type: ignore[no-untyped-def]
    catalog = provision_catalog(TopicCatalog.build(prefix=topic_prefix, pools=("default",)))
    made: list[Materializer] = []

    def make() -> Materializer:
        materializer = Materializer(
            consumer_factory=lambda: make_consumer(kafka_bootstrap, f"{topic_prefix}view"),
            catalog=catalog,
            codec=CODEC,
            store=JobViewStore(mongo_db),
            producer=DurableProducer(kafka_bootstrap),
            metrics=StreamMetrics(),
            count_scenes=count_scenes,
        )
        made.append(materializer)
        return materializer

    yield make
    for materializer in made:
        materializer.producer.close()


def _reads(materializer: Materializer) -> tuple[float | None, float | None]:
    """Stories read from the store and from the cache, as the metric counts them."""
    sample = materializer.metrics.registry.get_sample_value
    name = "storee_streams_view_story_reads_total"
    return sample(name, {"source": "store"}), sample(name, {"source": "cache"})


def _stored(db) -> tuple[dict, dict]:  # type: ignore[no-untyped-def]
    strip = lambda doc: {k: v for k, v in doc.items() if k != "_rev"}  # noqa: E731
    return (
        {doc["_id"]: strip(doc) for doc in db[STORIES].find({})},
        {doc["_id"]: strip(doc) for doc in db[TASKS].find({})},
    )


def test_a_stale_cache_costs_a_conflict_not_another_writers_events(make_materializer, mongo_db) -> None:
    submitted = story("s1", n_scenes=2)
    tasks = split(submitted, POLICY, now=T0 + 10)
    batch = make_batch(tasks, now=T0 + 20)
    first = [submitted, *tasks, batch]
    second = [started("s1", 0, batch.batch_id, T0 + 30), started("s1", 1, batch.batch_id, T0 + 31)]
    third = [completed("s1", 0, batch.batch_id, T0 + 900), completed("s1", 1, batch.batch_id, T0 + 950)]
    facts = lambda events: {"s1": [f for e in events for f in expand(e)]}  # noqa: E731

    a, b = make_materializer(), make_materializer()
    a.materialize(facts(first))  # a remembers s1 as it wrote it
    b.materialize(facts(second))  # another writer moves s1 on behind a's back
    a.materialize(facts(third))  # a's memory is stale: its write conflicts, it reads s1 back, applies again
    assert _reads(a) == (2, 1)

    stories, task_docs = _stored(mongo_db)
    assert stories["s1"]["status"] == "completed"
    assert {doc["status"] for doc in task_docs.values()} == {"completed"}
    assert all(doc["started_at"] is not None for doc in task_docs.values())  # b's events are kept
    # The same documents as one writer applying every event at once.
    whole = reduce_story("s1", None, {}, facts(first + second + third)["s1"], count_scenes=count_scenes)
    emission = ("_rev", "_completed_emitted", "_emitted")  # what producing StoryCompleted marks
    expected_story = {k: v for k, v in whole.story.items() if k not in emission}
    assert {k: v for k, v in stories["s1"].items() if k not in emission} == expected_story
    assert task_docs == whole.tasks


def test_a_story_the_cache_remembers_is_not_read_again(make_materializer, mongo_db) -> None:
    submitted = story("s2", n_scenes=2)
    tasks = split(submitted, POLICY, now=T0 + 10)
    materializer = make_materializer()
    materializer.materialize({"s2": [submitted]})
    materializer.materialize({"s2": list(tasks)})
    materializer.materialize({"s2": list(expand(make_batch(tasks, now=T0 + 20)))})
    assert _reads(materializer) == (1, 2)
    assert {doc["status"] for doc in _stored(mongo_db)[1].values()} == {"batched"}


class _Record:
    """What the materializer reads off a confluent-kafka message (the real one cannot be built)."""

    def __init__(self, topic: str, offset: int, value: bytes) -> None:
        self._topic, self._offset, self._value = topic, offset, value

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list:
        return []

    def error(self) -> None:
        return None


def test_a_contract_breaking_submission_fails_its_story_with_the_reason(make_materializer, mongo_db) -> None:
    materializer = make_materializer()
    bad = story("s-bad", params=params(fps=-1))
    good = story("s-good", n_scenes=1)
    topic = materializer.catalog.stories_submitted
    materializer.process([_Record(topic, 0, CODEC.encode(bad)), _Record(topic, 1, CODEC.encode(good))])
    stories, _ = _stored(mongo_db)
    assert stories["s-bad"]["status"] == "failed"
    assert stories["s-bad"]["error"]["code"] == "invalid_event"
    assert "params.fps" in stories["s-bad"]["error"]["message"]
    assert stories["s-bad"]["account_id"] == bad.account_id  # so its owner sees it
    assert stories["s-good"]["status"] == "queued" and stories["s-good"]["task_count"] == 1


def test_a_story_that_cannot_be_materialized_costs_no_other_story(make_materializer, mongo_db) -> None:
    materializer = make_materializer()
    good, doomed = story("s-fine", n_scenes=1), story("s-doomed", n_scenes=1)
    records = {sid: [_Record("t", i, b"")] for i, sid in enumerate(("s-fine", "s-doomed"))}
    # A fact the reduction cannot apply stands for any bug one story's events could trigger.
    materializer.materialize({"s-fine": [good], "s-doomed": [doomed, object()]}, records)  # type: ignore[list-item]
    assert materializer.producer.flush(10) == 0
    stories, _ = _stored(mongo_db)
    assert set(stories) == {"s-fine"}
    assert (
        materializer.metrics.registry.get_sample_value("storee_streams_dlq_total", {"agent": "materializer"})
        == 1
    )


def test_outages_are_waited_out_in_place(make_materializer) -> None:
    import threading

    from pymongo.errors import ServerSelectionTimeoutError

    materializer = make_materializer()
    failures = [ServerSelectionTimeoutError("no server"), ServerSelectionTimeoutError("still none")]
    calls: list[int] = []

    def step() -> None:
        calls.append(1)
        if failures:
            raise failures.pop(0)

    assert materializer._wait_out(threading.Event(), "flush", step) is True
    assert len(calls) == 3
    sample = materializer.metrics.registry.get_sample_value
    assert sample("storee_streams_outage_retries_total", {"agent": "materializer", "cause": "mongodb"}) == 2
    assert sample("storee_streams_waiting_for_dependency", {"agent": "materializer"}) == 0
    stopped = threading.Event()
    stopped.set()
    assert materializer._wait_out(stopped, "flush", step) is False


def test_events_on_a_topic_they_do_not_belong_on_are_not_applied(make_materializer, mongo_db) -> None:
    materializer = make_materializer()
    catalog = materializer.catalog
    stray_story = story("s-stray", n_scenes=1)
    (stray_task,) = split(story("s-stray-task", n_scenes=1), POLICY, now=T0)
    stray_start = started("s-stray-start", 0, "b-x", T0)
    materializer.process(
        [
            _Record(catalog.task_events, 0, CODEC.encode(stray_story)),  # dead-lettered: task.events is ours
            _Record(catalog.task_events, 1, CODEC.encode(stray_task)),
            _Record(catalog.tasks_requested, 0, CODEC.encode(stray_start)),  # skipped: the batcher's
        ]
    )
    stories, tasks = _stored(mongo_db)
    assert stories == {} and tasks == {}
    dead = materializer.metrics.registry.get_sample_value(
        "storee_streams_dlq_total", {"agent": "materializer"}
    )
    assert dead == 2
