"""Our producers place keyed records exactly where Java clients and aiokafka (Faust) would."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from ops.runtime.kafka import DurableProducer

pytestmark = pytest.mark.integration


def test_keyed_records_land_on_the_partition_faust_would_choose(kafka_bootstrap, make_topic, unique_id):
    topic = make_topic(f"t{unique_id}.parts", partitions=12)
    producer = DurableProducer(kafka_bootstrap)
    placed: dict[bytes, int] = {}
    keys = [f"story-{i}".encode() for i in range(60)]
    for key in keys:
        producer.produce(
            topic, b"x", key=key, on_delivery=lambda e, m: placed.__setitem__(m.key(), m.partition())
        )
    assert producer.flush(30) == 0
    faust_choice = DefaultPartitioner()
    partitions = list(range(12))
    assert placed == {key: faust_choice(key, partitions, partitions) for key in keys}
    assert len(set(placed.values())) > 6  # and they do spread
