"""The cancellation watcher against the real broker: starts at the lookback, reads only cancels."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from gpu_consumers.cancellations import CancellationWatcher, CancelledStories
from gpu_consumers.metrics import ConsumerMetrics
from ops.runtime.kafka import make_consumer
from schemas.codec import Codec
from schemas.events import StoryCancelled, TaskStarted
from schemas.ids import now_ms
from schemas.topics import TopicCatalog
from tests.gpu_consumers.members import cancel, when

pytestmark = [pytest.mark.integration]

DAY_MS = 24 * 3600 * 1000


def test_the_watcher_reads_the_cancels_of_the_lookback_and_then_new_ones(
    catalog: TopicCatalog, kafka_bootstrap: str, topic_prefix: str
) -> None:
    codec, now = Codec(), now_ms()
    # Written with explicit record times, as if produced days ago.
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    records = [
        (StoryCancelled(story_id="story-old", account_id="a"), now - 10 * DAY_MS),
        (StoryCancelled(story_id="story-recent", account_id="a"), now - DAY_MS),
        (
            TaskStarted(
                story_id="story-busy", task_id="story-busy:0", batch_id="b", consumer_id="c", attempt=0
            ),
            now - DAY_MS,
        ),
    ]
    for event, at in records:
        producer.produce(catalog.task_events, codec.encode(event), key=event.story_id, timestamp=at)
    fingerprint = codec.registry.current(StoryCancelled.schema_name).fingerprint
    # The StoryCancelled fingerprint on bytes that are no event: skipped, not fatal.
    producer.produce(
        catalog.task_events, b"\xc3\x01" + fingerprint + b"\xff\xff", key="x", timestamp=now - DAY_MS
    )
    assert producer.flush(30) == 0

    metrics = ConsumerMetrics("tiny")
    consumer = make_consumer(
        kafka_bootstrap, f"{topic_prefix}unused", **{"enable.partition.eof": True, "fetch.wait.max.ms": 50}
    )
    # No age limit on the set: only the start offsets keep story-old out.
    watcher = CancellationWatcher(
        consumer,
        codec,
        catalog.task_events,
        lookback_s=7 * 24 * 3600,
        stories=CancelledStories(),
        metrics=metrics,
    )
    watcher.start()
    try:
        assert watcher.wait_caught_up(30), "the watcher never reached the end of task.events"
        assert watcher.is_cancelled("story-recent")
        assert not watcher.is_cancelled("story-old") and not watcher.is_cancelled("story-busy")
        cancel(kafka_bootstrap, catalog, "story-live")
        when(lambda: watcher.is_cancelled("story-live"), 10, "a new cancel to be seen")
        assert metrics.count("storee_gpu_cancellations_seen_total") == 2
        assert watcher.broken is None
    finally:
        watcher.stop()
