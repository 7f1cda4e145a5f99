"""Faust's aiokafka transport with one fix and one hook.

The hook: the producer's ``flush``, which Faust awaits before every offset commit, also awaits the
app's ``flush_hooks``, so records produced outside Faust (:class:`streams.outlet.KafkaOutlet`) are
acknowledged before the offsets of the inputs behind them are committed.

The fix: seeking back to committed offsets never skips records. (And topics are declared through any
live broker, so one broker down does not fail a worker's start.)

Faust drops records it already fetched whenever flow stops or the generation changes mid-batch (a
rebalance, recovery pausing partitions), then relies on "seek to the committed offsets" to read them
again. aiokafka's ``seek_to_committed`` only seeks partitions whose committed offset is above zero, so a
partition that never had a commit keeps the position *after* the dropped records: they are skipped
until the worker restarts. We saw it: ``make run`` twice, and the second run's story, produced while the
worker joined, sat on a partition of stories.submitted no worker had committed for and was never split.

The fix: partitions with no committed offset (or offset 0) are sought to their beginning, which is what
the reset policy (``earliest``) means for them. Records read again are handled idempotently downstream.
Changelog partitions are left to Faust's recovery, which positions them itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka

log = logging.getLogger(__name__)


async def seek_uncommitted_to_beginning(
    consumer: AIOKafkaConsumer,
    committed: Mapping[TopicPartition, int | None],
    skip: Callable[[TopicPartition], bool] = lambda tp: False,
) -> list[TopicPartition]:
    """Seek every partition of ``committed`` without a committed offset (None or 0) whose position
    moved past 0 back to its beginning.

    ``committed`` is what ``AIOKafkaConsumer.seek_to_committed`` returned; partitions for which ``skip``
    is true are left alone, and so are those never read from (the reset policy still applies to them).
    Returns the partitions sought.
    """
    positions = _positions(consumer)
    uncommitted = [
        tp for tp, offset in committed.items() if not offset and positions.get(tp, 0) > 0 and not skip(tp)
    ]
    if uncommitted:
        await consumer.seek_to_beginning(*uncommitted)
        log.debug("sought uncommitted partitions to the beginning: %s", uncommitted)
    return uncommitted


def _positions(consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
    """Where the fetcher stands on each assigned partition that has a position (aiokafka 0.14 has no
    public accessor that does not wait for one)."""
    assignment = consumer._subscription.subscription.assignment
    if assignment is None:
        return {}
    return {tp: meta.offset for tp, meta in assignment.all_consumed_offsets().items()}


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    async def seek_to_committed(self) -> Mapping[Any, int]:
        committed = await super().seek_to_committed()
        consumer = self._ensure_consumer()
        changelogs = self.app.tables.changelog_topics
        await self.call_thread(
            seek_uncommitted_to_beginning, consumer, committed, lambda tp: tp.topic in changelogs
        )
        return committed


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Producer(faust_aiokafka.Producer):
    async def flush(self) -> None:
        await super().flush()
        for hook in getattr(self.app, "flush_hooks", ()):
            await hook()


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer
    Producer = Producer

    async def _get_controller_node(self, owner: Any, client: Any, timeout: int = 30000) -> int | None:
        """A live broker to send CreateTopics to.

        Faust asks the first broker of its metadata for the controller and fails the worker's start if
        that broker is down (NodeNotReadyError with one broker of three killed). In KRaft every broker
        forwards CreateTopics to the controller, so any broker that accepts a connection will do.
        """
        for broker in client.cluster.brokers():
            if await client.ready(broker.nodeId):
                return int(broker.nodeId)
        return await super()._get_controller_node(owner, client, timeout=timeout)  # type: ignore[no-any-return]


class App(faust.App):
    """A Faust app on :class:`Transport`; ``flush_hooks`` run whenever its producer is flushed, which
    Faust does before committing offsets and when stopping."""

    flush_hooks: list[Callable[[], Awaitable[None]]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flush_hooks = []

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)

    def _new_producer_transport(self) -> Transport:
        return Transport(self.conf.broker_producer, self)
