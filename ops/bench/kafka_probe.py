"""The local broker seen from outside, for benches and integration tests: topics of a prefix, records
produced and read back, committed offsets, group members, partition ends."""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

from ops.runtime.kafka import DurableProducer, admin_client, make_consumer, raise_for_error
from ops.runtime.provisioning import ensure_topics
from schemas.codec import Codec
from schemas.topics import TopicCatalog

T = TypeVar("T")
CODEC = Codec()


def ensure_catalog(bootstrap: str, prefix: str, **partitions: int) -> TopicCatalog:
    """Create the catalog's topics for ``prefix`` (auto-create is off on our broker)."""
    catalog = TopicCatalog.build(prefix=prefix)
    ensure_topics(admin_client(bootstrap), catalog)
    return catalog


def delete_prefixed_topics(bootstrap: str, prefix: str) -> None:
    admin = admin_client(bootstrap)
    names = [name for name in admin.list_topics(timeout=10).topics if name.startswith(prefix)]
    if names:
        for future in admin.delete_topics(names).values():
            with contextlib.suppress(Exception):  # cleanup must not mask the run's own result
                future.result(timeout=30)


def _story_key(event: Any) -> str:
    return str(event.story_id)


def produce(
    bootstrap: str,
    topic: str,
    events: Sequence[Any],
    key: Callable[[Any], str] = _story_key,
    *,
    partition_of: Callable[[int], int] | None = None,
    config: Mapping[str, Any] | None = None,
) -> None:
    """Produce ``events`` (keyed by their story id unless ``key`` says otherwise) and wait for every
    acknowledgement; ``partition_of(i)`` picks event ``i``'s partition, ``config`` tunes the producer."""
    producer = DurableProducer(bootstrap, **(config or {}))
    try:
        for i, event in enumerate(events):
            partition = None if partition_of is None else partition_of(i)
            producer.produce(topic, CODEC.encode(event), key=key(event).encode(), partition=partition)
        _wait_acknowledged(producer, topic, len(events))
    finally:
        producer.close()


def produce_to_partitions(bootstrap: str, topic: str, events: Sequence[Any]) -> None:
    """Produce event ``i`` to partition ``i`` (keyed by its story id, as the catalog says)."""
    produce(bootstrap, topic, events, partition_of=lambda i: i)


def produce_raw(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    """One record of arbitrary bytes (not an event: what a bad producer might write)."""
    producer = DurableProducer(bootstrap)
    try:
        producer.produce(topic, value, key=key)
        _wait_acknowledged(producer, topic, 1)
    finally:
        producer.close()


def _wait_acknowledged(producer: DurableProducer, topic: str, count: int) -> None:
    left = producer.flush(60)
    if left:
        raise RuntimeError(f"{left} of {count} records to {topic} were not acknowledged within 60s")


class TopicReader:
    """Reads every record of some topics from the beginning, accumulating them."""

    def __init__(self, bootstrap: str, topics: list[str], group: str) -> None:
        self.consumer = make_consumer(bootstrap, group)
        self.consumer.subscribe(topics)
        self.records: list[Any] = []

    def poll(self, seconds: float = 0.2) -> list[Any]:
        for message in self.consumer.consume(num_messages=1000, timeout=seconds):
            self.records.append(raise_for_error(message))
        return self.records

    def read_to_end(self, timeout: float = 60) -> list[Any]:
        """Poll until this reader has consumed up to the current end of every partition it reads."""
        deadline = time.monotonic() + timeout
        ends: dict[tuple[str, int], int] | None = None
        while True:
            self.poll(0.2)
            assignment = self.consumer.assignment()
            if assignment:
                if ends is None:
                    ends = {(tp.topic, tp.partition): self.consumer.get_watermark_offsets(tp, timeout=10)[1]
                            for tp in assignment}  # fmt: skip
                positions = {(tp.topic, tp.partition): tp.offset for tp in self.consumer.position(assignment)}
                if all(end == 0 or positions.get(key, -1) >= end for key, end in ends.items()):
                    return self.records
            if time.monotonic() > deadline:
                raise AssertionError(f"reader did not reach the end of its topics within {timeout:.0f}s")

    def events(self, cls: type[T]) -> list[T]:
        decoded = [CODEC.decode(record.value()) for record in self.records]
        return [event for event in decoded if isinstance(event, cls)]

    def close(self) -> None:
        self.consumer.close()


@functools.lru_cache(maxsize=4)
def _admin(bootstrap: str) -> Any:
    # One admin client for the run: creating and destroying one per poll made librdkafka's destroy hang.
    return admin_client(bootstrap)


def committed_offsets(
    bootstrap: str, group: str, partitions: list[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """A group's committed offsets, asked through the admin API (a consumer in the group could hang
    librdkafka's destroy while the group is active)."""
    admin = _admin(bootstrap)
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in partitions])
    result = admin.list_consumer_group_offsets([request], request_timeout=10)[group].result(timeout=15)
    return {(tp.topic, tp.partition): max(tp.offset, 0) for tp in result.topic_partitions}


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    """Sum of a group's committed offsets on a topic."""
    return sum(committed_offsets(bootstrap, group, [(topic, p) for p in range(partitions)]).values())


def member_partitions(bootstrap: str, group: str, topic: str) -> list[set[int]]:
    """The partitions of ``topic`` each member of a consumer group holds (empty list while rebalancing)."""
    admin = _admin(bootstrap)
    description = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
    if str(description.state) != "ConsumerGroupState.STABLE" and "STABLE" not in str(description.state):
        return []
    return [
        {tp.partition for tp in member.assignment.topic_partitions if tp.topic == topic}
        for member in description.members
    ]


def end_offsets(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    """The high watermark of every partition of ``topics``."""
    consumer = make_consumer(bootstrap, f"ends-{os.getpid()}")
    try:
        ends = {}
        for topic in topics:
            for partition in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                tp = TopicPartition(topic, partition)
                ends[(topic, partition)] = consumer.get_watermark_offsets(tp, timeout=10)[1]
        return ends
    finally:
        consumer.close()
