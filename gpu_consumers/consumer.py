"""One member of a pool's consumer group: polls tiered batch topics, runs batches off the polling thread.

Guarantee (at least once, idempotent effects): a batch's offset is committed only after every result
event of the batch was acknowledged by Kafka, and per partition only up to the oldest record still in
flight. Kafka being unavailable is waited out (bounded backoff, logged and counted); nothing is
committed meanwhile. A crash redoes at most the running and buffered batches; deterministic task ids,
atomic output writes and manifests make a redo harmless and cheap (a task whose output is stored is
re-announced, not rendered again), and the job view keeps one completion per task.

One bad record never costs another: a record this member will not run (undecodable, breaking the
contract, another pool's, a task type it cannot run) fails the tasks it names and goes to the DLQ
with the reason; any exception while handling a batch fails the tasks of that batch that have no
outcome yet and dead-letters it (:mod:`gpu_consumers.executor`). Either way its offset is committed
and the member goes on. Only a broken client (a fatal Kafka error, in the consumers, the producer or
the cancellation watcher) stops the member, with exit status 1, for its supervisor to restart.

Cancels: a :class:`~gpu_consumers.cancellations.CancellationWatcher` reads StoryCancelled from
``task.events``; the executor skips the tasks of cancelled stories before a batch, before each chunk
and before storing an output.

Groups: a member joins one group per tier (``<prefix>gpu-consumers.<pool>.<tier>``), each with one
topic. With both topics in one group, the cooperative-sticky assignor balances partition *counts*
only: a member that joins later can be handed every partition of one tier and none of the other
(measured: two members, each serving one tier, so 1:1 instead of 3:1 and half the capacity idle when
one tier is empty). One group per tier spreads each tier over every member, so each member's
scheduler sees both tiers.

Takeover: members are static (``group.instance.id``, :mod:`gpu_consumers.membership`), with the
classic protocol and the cooperative-sticky assignor. A member restarted after a crash joins with its
predecessor's instance id and gets the same partitions back at once, without a rebalance. Measured
from a kill -9 of a child of the supervisor (``--devices cpu,cpu``, 45 s session timeout, 2 cores) to
the restarted child's assignment in both tier groups: 1.3-1.6 s with the simulated backend and 5.8 s
with the tiny model (its ``from_pretrained`` load is most of it); the partitions never moved. The
alternatives, measured the same way: dynamic members (``GPU_STATIC_MEMBERSHIP=0``, as before) 45.0 s,
the session timeout; the new group protocol (KIP-848, ``group.protocol=consumer``) 46.3 s with
dynamic members, since the broker's session timeout (``group.consumer.session.timeout.ms``, 45 s)
still decides when a silent member is gone, and with static members the restarted member is refused
with UNRELEASED_INSTANCE_ID (fatal) until that timeout passed, so no takeover within 90 s. The
trade-offs of static members:

* they do not leave the group on close, so a member that stops and never comes back would hold its
  partitions for the session timeout (measured 43 s). A graceful stop therefore leaves explicitly:
  ``unsubscribe``, then poll until the revocation is served, then ``close``, which librdkafka turns
  into a LeaveGroup for static members too (the other member owned every partition 3.0 s after the
  SIGTERM; ``close`` right after ``unsubscribe`` does not leave). Only a crash, or
  ``GPU_LEAVE_GROUP_ON_STOP=0`` (for rolling restarts that come back within the session timeout),
  keeps the membership. A host that dies for good still costs the session timeout;
* two live processes must never share an instance id (the newer fences the older): a per-host lock
  file per slot guarantees that on one host; across hosts the base id (``GPU_INSTANCE_ID``, default
  the host name) must differ.

Threads: the main thread owns the Kafka consumers. It polls without pause (a paused partition returns
nothing, but the poll keeps the member alive however long a batch runs, so ``max.poll.interval.ms``
never expires), decodes batches into the :class:`WorkBuffer`, pauses a tier's partitions while that
tier has work buffered, and commits finished work. The pipeline thread takes the next item (a rejected
record first, else the batch the tier scheduler picks) and runs it through the :class:`BatchExecutor`.

Rebalances are cooperative: on revocation the buffered work of the revoked partitions is dropped and
its offsets forgotten, so nothing is committed for a partition another member now owns; a running
batch of such a partition finishes, its results stand (the new owner's redo is idempotent), and its
commit is skipped. On :meth:`GpuConsumer.stop` (SIGTERM) the member takes no new batch, hands back
the buffered ones, finishes the running one within the grace period, commits, and leaves.
"""

from __future__ import annotations

import enum
import functools
import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from gpu_consumers.cancellations import CancellationWatcher
from gpu_consumers.commits import Committer
from gpu_consumers.delivery import is_fatal
from gpu_consumers.exceptions import BatchHandedBack, KafkaClientBroken
from gpu_consumers.executor import BatchExecutor
from gpu_consumers.membership import InstanceClaim
from gpu_consumers.offsets import Partition
from gpu_consumers.work import (
    PendingBatch,
    Refusal,
    RejectedRecord,
    Work,
    WorkBuffer,
    read_batch,
    record_headers,
    record_key,
)
from schemas.codec import Codec
from schemas.records import TaskType, Tier

log = logging.getLogger(__name__)

# How long a graceful stop waits for the groups to take its partitions back before closing anyway.
LEAVE_TIMEOUT_S = 5.0


class _Settled(enum.Enum):
    """How the pipeline thread left an item: the polling thread commits, skips or stops on it."""

    DONE = "done"  # ended (results or failures delivered): commit its offset
    HANDED_BACK = "handed_back"  # stopping: left uncommitted on purpose, the next owner redoes it
    FATAL = "fatal"  # the Kafka client broke: stop the member


@dataclass(frozen=True, slots=True)
class _Outcome:
    kind: _Settled
    work: Work
    error: BaseException | None = None


class GpuConsumer:
    """The polling loop and the pipeline thread of one group member."""

    def __init__(
        self,
        *,
        consumers: Mapping[Tier, Consumer],
        executor: BatchExecutor,
        buffer: WorkBuffer,
        codec: Codec,
        topics: Mapping[str, Tier],
        pool: str,
        task_types: frozenset[TaskType],
        consumer_id: str,
        poll_timeout_s: float,
        shutdown_grace_s: float,
        ready_file: Path | None = None,
        stop_event: threading.Event | None = None,
        watcher: CancellationWatcher | None = None,
        instance: InstanceClaim | None = None,
        leave_group_on_stop: bool = True,
    ) -> None:
        self._consumers = dict(consumers)
        self._executor = executor
        self._buffer = buffer
        self._codec = codec
        self._topics = dict(topics)
        self._pool = pool
        self._task_types = task_types
        self.consumer_id = consumer_id
        self._poll_timeout = poll_timeout_s
        self._grace = shutdown_grace_s
        self._ready_file = ready_file
        self._watcher = watcher
        self._instance = instance
        self._leave_on_stop = leave_group_on_stop
        self._commits = Committer(self._client, lambda partition: partition in self._assigned)
        self._outcomes: queue.Queue[_Outcome] = queue.Queue()
        self._assigned: set[Partition] = set()
        self._paused: set[Partition] = set()
        # Shared with the executor, whose retry backoff wakes up when the consumer starts stopping.
        self._stopping = stop_event or threading.Event()
        self._fatal: BaseException | None = None
        self._worker = threading.Thread(target=self._work, name=f"pipeline-{consumer_id}", daemon=True)
        self._joined: set[Tier] = set()
        self.ready = threading.Event()

    def stop(self) -> None:
        """Begin a graceful stop (safe from a signal handler or another thread)."""
        self._stopping.set()

    def run(self) -> int:
        """Consume until stopped; return 0 after a clean stop, 1 after a fatal error."""
        if self._watcher is not None:
            self._watcher.start()
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
                self._commits.retry()
                self._sync_pauses()
                if self._watcher is not None and self._watcher.broken is not None and self._fatal is None:
                    self._fatal = self._watcher.broken
                if self._fatal is not None:
                    self._stopping.set()
        finally:
            self._stopping.set()
            self._buffer.close()
            self._drain_outcomes()
            self._commits.retry()
            self._close()
        log.info("consumer stopped consumer=%s fatal=%s", self.consumer_id, self._fatal is not None)
        return 1 if self._fatal is not None else 0

    # -- the polling thread ------------------------------------------------------------------------

    def _begin_stop(self) -> float:
        log.info("stopping consumer=%s running=%s", self.consumer_id, self._buffer.busy)
        self._buffer.close()
        for item in self._buffer.drop():
            log.info("handing back item=%s offset=%d", item.label, item.offset)
        return time.monotonic() + self._grace

    def _close(self) -> None:
        # A static member does not leave the group on close(); unsubscribe() first makes it leave, so
        # after a graceful stop its partitions move at once. After a fatal error it stays a member:
        # the restarted process takes its instance id and the same partitions back.
        leave = self._fatal is None and self._leave_on_stop
        if leave:
            self._leave()
        for consumer in self._consumers.values():
            try:
                consumer.close()
            except (KafkaException, RuntimeError) as exc:
                log.warning("consumer close failed consumer=%s error=%s", self.consumer_id, exc)
        if self._watcher is not None:
            self._watcher.stop()
        if not self._worker.is_alive():  # else it still writes (grace over): its threads end with it
            self._executor.close()
        if self._instance is not None:
            self._instance.release()
        log.info("left groups consumer=%s left=%s", self.consumer_id, leave)

    def _leave(self) -> None:
        # librdkafka sends a static member's LeaveGroup only once the unsubscribe's revocation has
        # been served (measured: close() right after unsubscribe() still held the partitions 43 s).
        # Records polled meanwhile are dropped: nothing of them was committed.
        try:
            for consumer in self._consumers.values():
                consumer.unsubscribe()
            deadline = time.monotonic() + LEAVE_TIMEOUT_S
            while time.monotonic() < deadline and any(c.assignment() for c in self._consumers.values()):
                for consumer in self._consumers.values():
                    consumer.poll(0.05)
        except (KafkaException, RuntimeError) as exc:
            log.warning("leaving the groups failed consumer=%s error=%s", self.consumer_id, exc)

    def _on_message(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                return
            if is_fatal(error):
                self._fatal = KafkaClientBroken(f"consumer fatal error: {error.str()}")
            log.warning("consumer error consumer=%s error=%s", self.consumer_id, error.str())
            return
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if topic is None or partition is None or offset is None or (topic, partition) not in self._assigned:
            return  # fetched just before a revocation: the new owner reads it from the committed offset
        self._commits.take((topic, partition), offset)
        value = message.value() or b""  # a tombstone fails decoding and goes to the DLQ
        headers, key, tier = record_headers(message), record_key(message), self._topics[topic]
        read = read_batch(self._codec, value, topic=topic, pool=self._pool, task_types=self._task_types)
        if isinstance(read, Refusal):
            log.warning(
                "refusing record topic=%s partition=%d offset=%d reason=%s error=%s",
                topic,
                partition,
                offset,
                read.reason,
                read.error,
            )
            self._buffer.put(
                RejectedRecord(
                    tier, topic, partition, offset, key, value, headers, read.error, read.reason, read.batch
                )
            )
            return
        self._buffer.put(PendingBatch(read, tier, topic, partition, offset, key, value, headers))

    def _drain_outcomes(self) -> None:
        while True:
            try:
                outcome = self._outcomes.get_nowait()
            except queue.Empty:
                return
            if outcome.kind is _Settled.DONE:
                self._commits.finish(outcome.work.source, outcome.work.offset)
            elif outcome.kind is _Settled.FATAL:
                self._fatal = outcome.error

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
        for item in self._buffer.drop(revoked):
            log.info("revoked before running item=%s offset=%d", item.label, item.offset)
        for partition in revoked:
            self._commits.forget(partition)
        running = self._buffer.running
        if running is not None and running.source in revoked:
            log.info("revoked while running, its commit will be skipped item=%s", running.label)
        log.info("revoked consumer=%s partitions=%s", self.consumer_id, _names(partitions))

    # -- the pipeline thread -----------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self._buffer.take()
            if item is None:
                return
            try:
                if isinstance(item, RejectedRecord):
                    self._executor.refuse(item)
                else:
                    self._executor.execute(item)
                outcome = _Outcome(_Settled.DONE, item)
            except BatchHandedBack as exc:
                log.info("handed back item=%s: %s", item.label, exc)
                outcome = _Outcome(_Settled.HANDED_BACK, item)
            except KafkaClientBroken as exc:
                log.error("Kafka client broken, stopping item=%s: %s", item.label, exc)
                outcome = _Outcome(_Settled.FATAL, item, exc)
            except Exception:  # noqa: BLE001 - the executor ends its batches; this is the last resort
                # Reached only through a bug in ending a batch: redoing it after a restart would fail
                # the same way forever, so it is committed (the DLQ and TaskFailed were attempted).
                log.critical(
                    "ending the batch failed, committing it anyway item=%s", item.label, exc_info=True
                )
                outcome = _Outcome(_Settled.DONE, item)
            finally:
                self._buffer.finished()
            self._outcomes.put(outcome)
            if outcome.kind is _Settled.FATAL:
                return


def _names(partitions: list[TopicPartition]) -> str:
    return ",".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "-"
