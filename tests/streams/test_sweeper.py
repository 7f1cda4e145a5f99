"""The deadline sweeper on the real broker and MongoDB-wire server: overdue tasks end, wherever they wait."""

from __future__ import annotations

import uuid

import pytest

from ops.runtime.kafka import DurableProducer, make_consumer
from schemas.events import TaskExpired
from schemas.topics import TopicCatalog
from schemas.view import STORIES, TASKS
from streams.batching import make_batch
from streams.metrics import StreamMetrics
from streams.splitting import split
from streams.sweep_loop import Sweeper
from streams.view_facts import expand
from streams.view_loop import Materializer
from streams.view_store import JobViewStore
from tests.streams.factories import POLICY, T0, started, story
from tests.streams.harness import CODEC, TopicReader
from tests.streams.test_view import count_scenes

pytestmark = pytest.mark.integration


def test_tasks_past_their_deadline_expire_in_any_stage_and_started_ones_are_left(
    kafka_bootstrap, mongo_db, topic_prefix, provision_catalog
) -> None:
    catalog = provision_catalog(TopicCatalog.build(prefix=topic_prefix, pools=("default",)))
    store = JobViewStore(mongo_db)
    materializer = Materializer(
        consumer_factory=lambda: make_consumer(kafka_bootstrap, f"{topic_prefix}view"),
        catalog=catalog, codec=CODEC, store=store, producer=DurableProducer(kafka_bootstrap),
        metrics=StreamMetrics(), count_scenes=count_scenes,
    )  # fmt: skip
    submitted = story("late", n_scenes=3)
    queued, batched, running = split(submitted, POLICY, now=T0 + 10)  # deadline T0 + 300 s
    batch = make_batch([batched, running], now=T0 + 20)
    events = [submitted, queued, batched, running, batch, started("late", 2, batch.batch_id, T0 + 30)]
    materializer.materialize({"late": [f for e in events for f in expand(e)]})
    on_time = story("on-time", n_scenes=1, submitted_at=T0 + 3_600_000)
    materializer.materialize({"on-time": [on_time, *split(on_time, POLICY, now=T0)]})

    now = queued.deadline + 10_000  # past the deadline and the grace period
    sweeper = Sweeper(
        store=store, producer=DurableProducer(kafka_bootstrap), codec=CODEC, catalog=catalog,
        metrics=StreamMetrics(), interval_s=1, grace_s=5, clock=lambda: now,
    )  # fmt: skip
    assert sweeper.sweep() == 2
    reader = TopicReader(kafka_bootstrap, [catalog.task_events], f"r-{uuid.uuid4().hex}")
    try:
        reader.read_to_end()
        expired = reader.events(TaskExpired)
    finally:
        reader.close()
    assert sorted(e.task_id for e in expired) == ["late:0", "late:1"]  # queued and batched, not running
    assert all(e.deadline == queued.deadline for e in expired)

    materializer.materialize({"late": list(expired)})
    tasks = {doc["_id"]: doc["status"] for doc in mongo_db[TASKS].find({"story_id": "late"})}
    assert tasks == {"late:0": "expired", "late:1": "expired", "late:2": "running"}
    assert sweeper.sweep() == 0  # nothing overdue is left (the running task is not the sweeper's)
    assert mongo_db[STORIES].find_one({"_id": "on-time"})["status"] == "queued"
    materializer.producer.close()
