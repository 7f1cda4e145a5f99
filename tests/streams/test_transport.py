"""Seeking back to committed offsets, on the real broker: partitions never committed go to their start.

Faust drops records it fetched when flow stops mid-batch and seeks back to the committed offsets;
aiokafka alone leaves a never-committed partition where the fetch left it (see streams.transport).
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from ops.runtime.kafka import DurableProducer
from streams.transport import seek_uncommitted_to_beginning

pytestmark = pytest.mark.integration


def _produce(bootstrap: str, topic: str, per_partition: int, partitions: int) -> None:
    producer = DurableProducer(bootstrap)
    for partition in range(partitions):
        for i in range(per_partition):
            producer.produce(topic, f"{partition}-{i}".encode(), key=b"k", partition=partition)
    assert producer.flush(30) == 0


async def _scenario(bootstrap: str, topic: str, group: str) -> dict[str, object]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        p0, p1, p2, p3 = (TopicPartition(topic, p) for p in range(4))
        consumer.assign([p0, p1, p2, p3])  # p3 holds no records: its position never moves
        await consumer.commit({p1: OffsetAndMetadata(2, "")})
        read = 0
        while read < 3 + 1 + 3:  # every record fetched (p1 from its commit): positions past them all
            batches = await consumer.getmany(timeout_ms=2000)
            read += sum(len(records) for records in batches.values())
        # What Faust does after dropping fetched records: seek back to the committed offsets.
        committed = await consumer.seek_to_committed()
        plain = {tp.partition: await consumer.position(tp) for tp in (p0, p1, p2)}
        committed = await consumer.seek_to_committed()
        sought = await seek_uncommitted_to_beginning(consumer, committed, skip=lambda tp: tp == p2)
        fixed = {tp.partition: await consumer.position(tp) for tp in (p0, p1, p2)}
        first = await consumer.getone(p0)
        return {"plain": plain, "fixed": fixed, "sought": sought, "first": first.value}
    finally:
        await consumer.stop()


def test_uncommitted_partitions_are_read_again_from_their_beginning(kafka_bootstrap, make_topic, unique_id):
    topic = make_topic(f"t{unique_id}.seek", partitions=4)
    _produce(kafka_bootstrap, topic, per_partition=3, partitions=3)
    result = asyncio.run(_scenario(kafka_bootstrap, topic, f"g-{unique_id}"))
    # aiokafka alone: the never-committed partitions stay past the records the fetch returned.
    assert result["plain"] == {0: 3, 1: 2, 2: 3}
    # With the fix: back to the start, except the committed partition and the one skipped.
    assert result["fixed"] == {0: 0, 1: 2, 2: 3}
    assert [tp.partition for tp in result["sought"]] == [0]
    assert result["first"] == b"0-0"


def test_topics_are_declared_through_a_live_broker(kafka_bootstrap):
    from aiokafka.client import AIOKafkaClient

    from streams.transport import Transport

    async def scenario() -> tuple[int | None, set[int]]:
        client = AIOKafkaClient(bootstrap_servers=kafka_bootstrap)
        await client.bootstrap()
        try:
            transport = Transport.__new__(Transport)  # only the method under test, no app behind it
            node = await transport._get_controller_node(None, client)
            return node, {broker.nodeId for broker in client.cluster.brokers()}
        finally:
            await client.close()

    node, brokers = asyncio.run(scenario())
    assert node in brokers
