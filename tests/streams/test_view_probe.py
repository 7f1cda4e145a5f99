"""The end-to-end probe's stories never reach the job view, and still complete like a user's."""

from __future__ import annotations

import dataclasses

import pytest

from schemas.events import Event, StoryCompleted
from schemas.ids import PROBE_ACCOUNT, PROBE_STORY_PREFIX, new_event_id
from schemas.topics import TopicCatalog
from schemas.view import STORIES, TASKS
from streams.batching import make_batch
from streams.metrics import StreamMetrics
from streams.splitting import split
from streams.view import apart_probes
from streams.view_loop import Materializer
from streams.view_store import JobViewStore
from tests.streams.factories import POLICY, T0, completed, started, story
from tests.streams.harness import CODEC
from tests.streams.test_view import count_scenes

PROBE = PROBE_STORY_PREFIX + "premium-1"


def _fresh(event: Event) -> Event:
    return dataclasses.replace(event, event_id=new_event_id())  # type: ignore[type-var]


def _lifecycle(story_id: str, account_id: str) -> tuple[list[Event], list[Event]]:
    """(submitted, split and batched) and (started, completed) of a one-scene story."""
    submitted = story(story_id, n_scenes=1, account_id=account_id)
    tasks = split(submitted, POLICY, now=T0 + 10)
    batch = make_batch(tasks, now=T0 + 20)
    first = [_fresh(e) for e in (submitted, *tasks, batch)]
    second = [
        _fresh(started(story_id, 0, batch.batch_id, T0 + 30)),
        _fresh(completed(story_id, 0, batch.batch_id, T0 + 40)),
    ]
    return first, second


def test_probe_stories_are_taken_apart_from_users() -> None:
    facts = {"user-1": [], PROBE: [], "storee-probes": []}
    users, probes = apart_probes(facts)  # type: ignore[arg-type]
    assert set(users) == {"user-1", "storee-probes"} and set(probes) == {PROBE}


class _Message:
    def __init__(self, topic: str, event: Event, offset: int) -> None:
        self._topic, self._value, self._offset = topic, CODEC.encode(event), offset

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def value(self) -> bytes:
        return self._value

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


class _Producer:
    def __init__(self) -> None:
        self.sent: list[Event] = []

    def produce(self, topic: str, value: bytes, **_: object) -> None:
        self.sent.append(CODEC.decode(value))

    def flush(self, timeout: float) -> int:
        return 0

    def close(self) -> None:
        pass


def _topic_of(catalog: TopicCatalog, event: Event) -> str:
    name = type(event).__name__
    if name == "StorySubmitted":
        return catalog.stories_submitted
    if name == "TaskRequested":
        return catalog.tasks_requested
    if name == "BatchReady":
        return catalog.batches(event.pool, event.tier)  # type: ignore[attr-defined]
    return catalog.task_events


@pytest.mark.integration
def test_the_materializer_completes_a_probe_in_memory_and_writes_no_document(mongo_db, topic_prefix) -> None:
    catalog = TopicCatalog.build(prefix=topic_prefix, pools=("default",))
    producer = _Producer()
    materializer = Materializer(
        consumer_factory=lambda: None,  # type: ignore[arg-type,return-value]
        catalog=catalog,
        codec=CODEC,
        store=JobViewStore(mongo_db),
        producer=producer,  # type: ignore[arg-type]
        metrics=StreamMetrics(),
        count_scenes=count_scenes,
    )
    probe_first, probe_second = _lifecycle(PROBE, PROBE_ACCOUNT)
    user_first, user_second = _lifecycle("user-1", "acct-1")
    offsets = iter(range(1000))
    for flush in ([*probe_first, *user_first], [*probe_second, *user_second]):  # two flushes, as in a run
        materializer.process([_Message(_topic_of(catalog, e), e, next(offsets)) for e in flush])  # type: ignore[misc]

    done = {e.story_id: e for e in producer.sent if isinstance(e, StoryCompleted)}
    assert set(done) == {PROBE, "user-1"}
    assert done[PROBE].account_id == PROBE_ACCOUNT and done[PROBE].tasks_completed == 1
    assert [d["_id"] for d in mongo_db[STORIES].find({})] == ["user-1"]
    assert {d["story_id"] for d in mongo_db[TASKS].find({})} == {"user-1"}
    assert mongo_db[STORIES].count_documents({"account_id": PROBE_ACCOUNT}) == 0
    # A replayed flush (a lost commit) completes nothing twice.
    materializer.process([_Message(_topic_of(catalog, e), e, next(offsets)) for e in probe_second])  # type: ignore[misc]
    assert sum(isinstance(e, StoryCompleted) and e.story_id == PROBE for e in producer.sent) == 1
