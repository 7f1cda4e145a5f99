"""One member of a pool's consumer group: polls tiered batch topics, runs batches off the polling thread.

Guarantee (at least once, idempotent effects): a batch's offset is committed only after every result
event of the batch was acknowledged by Kafka, and per partition only up to the oldest record still in
flight. A crash redoes at most the running and buffered batches; deterministic task ids and atomic
output writes make a redo harmless, and the job view keeps one completion per task.

Groups: a member joins one group per tier (``<prefix>gpu-consumers.<pool>.<tier>``), each with one
topic. With both topics in one group, the cooperative-sticky assignor balances partition *counts*
only: a member that joins later can be handed every partition of one tier and none of the other
(measured: two members, each serving one tier, so 1:1 instead of 3:1 and half the capacity idle when
one tier is empty). One group per tier spreads each tier over every member, so each member's
scheduler sees both tiers.

Threads: the main thread owns the Kafka consumers. It polls without pause (a paused partition returns
nothing, but the poll keeps the member alive however long a batch runs, so ``max.poll.interval.ms``
never expires), decodes batches into the :class:`WorkBuffer`, pauses a tier's partitions while that
tier has a batch buffered, and commits finished batches. The pipeline thread takes the next batch the
tier scheduler picks and runs it through the :class:`BatchExecutor`.

Rebalances are cooperative: on revocation the buffered batches of the revoked partitions are dropped
and their offsets forgotten, so nothing is committed for a partition another member now owns; a
running batch of such a partition finishes, its results stand (the new owner's redo is idempotent),
and its commit is skipped. On :meth:`GpuConsumer.stop` (SIGTERM) the member takes no new batch, hands
back the buffered ones, finishes the running one within the grace period, commits, and leaves.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from gpu_consumers.exceptions import UnsupportedTask
from gpu_consumers.executor import BatchExecutor, BatchHandedBack
from gpu_consumers.offsets import OffsetTracker, Partition
from gpu_consumers.publisher import ResultPublisher
from gpu_consumers.work import PendingBatch, WorkBuffer, record_headers, record_key
from schemas.codec import Codec
from schemas.dlq import dead_letter
from schemas.events import BatchReady
from schemas.exceptions import CodecError
from schemas.records import TaskType, Tier

log = logging.getLogger(__name__)

SERVICE = "gpu_consumers"
COMMIT_RETRY_S = 0.2


@dataclass(frozen=True, slots=True)
class _Outcome:
    kind: str  # "done", "handed_back" or "fatal"
    pending: PendingBatch
    error: BaseException | None = None


class GpuConsumer:
    """The polling loop and the pipeline thread of one group member."""

    def __init__(
        self,
        *,
        consumers: Mapping[Tier, Consumer],
        executor: BatchExecutor,
        buffer: WorkBuffer,
        publisher: ResultPublisher,
        codec: Codec,
        topics: Mapping[str, Tier],
        pool: str,
        task_types: frozenset[TaskType],
        consumer_id: str,
        poll_timeout_s: float,
        shutdown_grace_s: float,
        ready_file: Path | None = None,
        stop_event: threading.Event | None = None,
    ) -> None:
        self._consumers = dict(consumers)
        self._executor = executor
        self._buffer = buffer
        self._publisher = publisher
        self._codec = codec
        self._topics = dict(topics)
        self._pool = pool
        self._task_types = task_types
        self.consumer_id = consumer_id
        self._poll_timeout = poll_timeout_s
        self._grace = shutdown_grace_s
        self._ready_file = ready_file
        self._offsets = OffsetTracker()
        self._outcomes: queue.Queue[_Outcome] = queue.Queue()
        self._assigned: set[Partition] = set()
        self._paused: set[Partition] = set()
        # Shared with the executor, whose retry backoff wakes up when the consumer starts stopping.
        self._stopping = stop_event or threading.Event()
        self._fatal: BaseException | None = None
        self._worker = threading.Thread(target=self._work, name=f"pipeline-{consumer_id}", daemon=True)
        self._joined: set[Tier] = set()
        self._uncommitted: dict[Partition, int] = {}
        self._commit_retry_at = 0.0
        self.ready = threading.Event()

    def stop(self) -> None:
        """Begin a graceful stop (safe from a signal handler or another thread)."""
        self._stopping.set()

    def run(self) -> int:
        """Consume until stopped; return 0 after a clean stop, 1 after a fatal error."""
        for tier, consumer in self._consumers.items():
            topics = [topic for topic, of in self._topics.items() if of is tier]
            consumer.subscribe(
                topics,
                on_assign=functools.partial(self._on_assign, tier),
                on_revoke=lambda _, partitions: self._on_revoke(partitions),
                on_lost=lambda _, partitions: self._on_revoke(partitions),
            )
        self._worker.start()
        stop_deadline: float | None = None
        try:
            while True:
                if self._stopping.is_set() and stop_deadline is None:
                    stop_deadline = self._begin_stop()
                if stop_deadline is not None:
                    if not self._worker.is_alive():
                        break
                    if time.monotonic() > stop_deadline:
                        log.warning(
                            "grace period over, handing back the running batch consumer=%s", self.consumer_id
                        )
                        break
                # No call waits on two consumers at once, so each gets a share of the poll timeout.
                for consumer in self._consumers.values():
                    message = consumer.poll(self._poll_timeout / len(self._consumers))
                    if message is not None:
                        self._on_message(message)
                self._drain_outcomes()
                self._retry_commits()
                self._sync_pauses()
                if self._fatal is not None:
                    self._stopping.set()
        finally:
            self._stopping.set()
            self._buffer.close()
            self._drain_outcomes()
            self._retry_commits()
            for consumer in self._consumers.values():
                try:
                    # close() leaves the group at once, so the partitions move without a session timeout.
                    consumer.close()
                except (KafkaException, RuntimeError) as exc:
                    log.warning("consumer close failed consumer=%s error=%s", self.consumer_id, exc)
        log.info("consumer stopped consumer=%s fatal=%s", self.consumer_id, self._fatal is not None)
        return 1 if self._fatal is not None else 0

    # -- the polling thread ------------------------------------------------------------------------

    def _begin_stop(self) -> float:
        log.info("stopping consumer=%s running=%s", self.consumer_id, self._buffer.busy)
        self._buffer.close()
        for pending in self._buffer.drop():
            log.info("handing back batch_id=%s offset=%d", pending.batch.batch_id, pending.offset)
        return time.monotonic() + self._grace

    def _on_message(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                return
            if error.fatal():
                self._fatal = KafkaException(error)
            log.warning("consumer error consumer=%s error=%s", self.consumer_id, error.str())
            return
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if topic is None or partition is None or offset is None or (topic, partition) not in self._assigned:
            return  # fetched just before a revocation: the new owner reads it from the committed offset
        self._offsets.take((topic, partition), offset)
        value = message.value() or b""  # a tombstone fails decoding below and goes to the DLQ
        headers = record_headers(message)
        try:
            event = self._codec.decode(value)
            if not isinstance(event, BatchReady):
                raise CodecError(f"{topic} carries BatchReady events, got {event.schema_name}")
            if event.pool != self._pool:
                raise UnsupportedTask(f"batch for pool {event.pool!r} on a topic of pool {self._pool!r}")
            if event.task_type not in self._task_types:
                raise UnsupportedTask(f"pool {self._pool!r} does not run {event.task_type.value} tasks")
        except (CodecError, UnsupportedTask) as exc:
            log.warning("dead letter topic=%s partition=%d offset=%d error=%s", topic, partition, offset, exc)
            record = dead_letter(
                topic=topic,
                partition=partition,
                offset=offset,
                key=record_key(message),
                value=value,
                headers=headers,
                error=exc,
                service=SERVICE,
            )
            self._publisher.dead_letter_sync(record)
            self._finish(topic, partition, offset)
            return
        self._buffer.put(
            PendingBatch(
                batch=event,
                tier=self._topics[topic],
                topic=topic,
                partition=partition,
                offset=offset,
                key=record_key(message),
                value=value,
                headers=headers,
            )
        )

    def _drain_outcomes(self) -> None:
        while True:
            try:
                outcome = self._outcomes.get_nowait()
            except queue.Empty:
                return
            pending = outcome.pending
            if outcome.kind == "done":
                self._finish(pending.topic, pending.partition, pending.offset)
            elif outcome.kind == "fatal":
                self._fatal = outcome.error
            # handed_back: left uncommitted on purpose; the next owner redoes it.

    def _finish(self, topic: str, partition: int, offset: int) -> None:
        commit_at = self._offsets.finish((topic, partition), offset)
        if commit_at is not None:
            self._commit(topic, partition, commit_at)

    def _commit(self, topic: str, partition: int, offset: int) -> None:
        try:
            self._client(topic).commit(offsets=[TopicPartition(topic, partition, offset)], asynchronous=False)
            log.debug("committed topic=%s partition=%d offset=%d", topic, partition, offset)
            self._uncommitted.pop((topic, partition), None)
        except KafkaException as exc:
            # Refused during a rebalance (stale generation) or after losing the partition. If it is
            # still ours once the rebalance settles, the commit is retried; if not, the new owner
            # redoes the batch from the last committed offset.
            log.warning(
                "commit failed topic=%s partition=%d offset=%d error=%s", topic, partition, offset, exc
            )
            if (topic, partition) in self._assigned:
                previous = self._uncommitted.get((topic, partition), 0)
                self._uncommitted[(topic, partition)] = max(offset, previous)
                self._commit_retry_at = time.monotonic() + COMMIT_RETRY_S

    def _retry_commits(self) -> None:
        if not self._uncommitted or time.monotonic() < self._commit_retry_at:
            return
        for (topic, partition), offset in list(self._uncommitted.items()):
            if (topic, partition) in self._assigned:
                self._commit(topic, partition, offset)
            else:
                self._uncommitted.pop((topic, partition), None)

    def _sync_pauses(self) -> None:
        stopping = self._stopping.is_set()
        full = {tier for tier in Tier if self._buffer.buffered(tier) > 0}
        want = {tp for tp in self._assigned if stopping or self._topics[tp[0]] in full}
        pause, resume = want - self._paused, self._paused - want
        for tier, consumer in self._consumers.items():
            to_pause = [TopicPartition(t, p) for t, p in pause if self._topics[t] is tier]
            if to_pause:
                consumer.pause(to_pause)
            to_resume = [TopicPartition(t, p) for t, p in resume if self._topics[t] is tier]
            if to_resume:
                consumer.resume(to_resume)
                self._restart_fetch(consumer, to_resume)
        self._paused = want

    def _client(self, topic: str) -> Consumer:
        return self._consumers[self._topics[topic]]

    def _restart_fetch(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # librdkafka takes up to a second to fetch a resumed partition again (measured ~940 ms with
        # 2.16), which would starve a tier whose batches are shorter than that. Seeking to the current
        # position restarts the fetch at once; it neither skips nor repeats a record.
        try:
            for position in consumer.position(partitions):
                if position.offset >= 0:
                    consumer.seek(position)
        except KafkaException as exc:
            log.debug("seek after resume failed consumer=%s error=%s", self.consumer_id, exc)

    def _on_assign(self, tier: Tier, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned.update((tp.topic, tp.partition) for tp in partitions)
        self._joined.add(tier)
        log.info(
            "assigned consumer=%s tier=%s partitions=%s", self.consumer_id, tier.value, _names(partitions)
        )
        # Ready once a member of every tier's group: from then on it takes its share of each tier.
        if not self.ready.is_set() and self._joined == set(self._consumers):
            if self._ready_file is not None:
                self._ready_file.parent.mkdir(parents=True, exist_ok=True)
                self._ready_file.write_text(self.consumer_id + "\n", encoding="utf-8")
            self.ready.set()

    def _on_revoke(self, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        self._assigned -= revoked
        self._paused -= revoked
        for pending in self._buffer.drop(revoked):
            log.info("revoked before running batch_id=%s offset=%d", pending.batch.batch_id, pending.offset)
        for partition in revoked:
            self._offsets.forget(partition)
            self._uncommitted.pop(partition, None)
        running = self._buffer.running
        if running is not None and running.source in revoked:
            log.info("revoked while running, its commit will be skipped batch_id=%s", running.batch.batch_id)
        log.info("revoked consumer=%s partitions=%s", self.consumer_id, _names(partitions))

    # -- the pipeline thread -----------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            pending = self._buffer.take()
            if pending is None:
                return
            try:
                self._executor.execute(pending)
                outcome = _Outcome("done", pending)
            except BatchHandedBack as exc:
                log.info("handed back batch_id=%s: %s", pending.batch.batch_id, exc)
                outcome = _Outcome("handed_back", pending)
            except Exception as exc:  # noqa: BLE001 - reported to the polling thread, which stops
                log.exception("batch aborted batch_id=%s", pending.batch.batch_id)
                outcome = _Outcome("fatal", pending, exc)
            finally:
                self._buffer.finished()
            self._outcomes.put(outcome)
            if outcome.kind == "fatal":
                return


def _names(partitions: list[TopicPartition]) -> str:
    return ",".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "-"
