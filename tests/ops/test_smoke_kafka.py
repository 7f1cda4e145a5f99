"""Smoke test: a durable produce (acks=all, idempotence) consumed back over TCP from the real broker."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

from ops.runtime.kafka import DurableProducer, make_consumer, raise_for_error

pytestmark = pytest.mark.integration


def test_produce_acks_all_and_consume_back(kafka_bootstrap, make_topic, topic_prefix):
    topic = make_topic(f"{topic_prefix}smoke", partitions=3)
    producer = DurableProducer(kafka_bootstrap)
    assert producer.client is not None
    first = producer.produce_sync(topic, b"value-0", key=b"key-0")
    assert first.error() is None and first.offset() >= 0

    delivered = []
    for i in range(1, 200):
        producer.produce(
            topic,
            f"value-{i}".encode(),
            key=f"key-{i % 7}".encode(),
            headers=[("n", str(i).encode())],
            on_delivery=lambda e, m: delivered.append((e, m)),
        )
    assert producer.flush(30) == 0
    producer.close()
    assert len(delivered) == 199 and all(error is None for error, _ in delivered)

    consumer = make_consumer(kafka_bootstrap, f"{topic_prefix}group")
    consumer.subscribe([topic])
    seen: dict[int, list[int]] = defaultdict(list)
    by_key: dict[bytes, set[int]] = defaultdict(set)
    deadline = time.monotonic() + 30
    try:
        while sum(map(len, seen.values())) < 200 and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            raise_for_error(message)
            n = int(message.value().decode().split("-")[1])
            seen[message.partition()].append(n)
            by_key[message.key()].add(message.partition())
            consumer.store_offsets(message)  # processed: only now may its offset be committed
        consumer.commit(asynchronous=False)
        committed = consumer.committed(consumer.assignment(), timeout=10)
    finally:
        consumer.close()

    assert sorted(n for values in seen.values() for n in values) == list(range(200))
    # Per partition, records come back in the order they were produced; one key lands on one partition.
    assert all(values == sorted(values) for values in seen.values())
    assert all(len(partitions) == 1 for partitions in by_key.values())
    assert sum(tp.offset for tp in committed) == 200
