"""The hand-off between the polling thread and the pipeline thread: buffered batches per tier.

The polling thread puts decoded batches in; the pipeline thread takes the next one the
:class:`TierScheduler` picks and hands it back done. The polling thread pauses a tier's partitions
while that tier has a batch buffered, so each consumer holds at most one running batch and about
one buffered batch per tier: a crash loses nothing but uncommitted offsets, and a tier's next batch is
fetched while the current one runs, so the scheduler sees every backlogged tier when it chooses.

Records the member will not run (undecodable, another pool's, a task type it cannot run) come through
here too, as :class:`RejectedRecord`: the pipeline thread fails their tasks and dead-letters them, so
waiting out Kafka happens in one place and the polling thread never blocks. They are taken before any
batch, and they count as buffered for their tier (so a flood of them pauses the tier like batches do).
"""

from __future__ import annotations

import collections
import enum
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message

from gpu_consumers.exceptions import UnsupportedTask
from gpu_consumers.offsets import Partition
from gpu_consumers.scheduler import TierScheduler
from schemas.codec import Codec
from schemas.events import BatchReady
from schemas.exceptions import CodecError, ContractError
from schemas.records import TaskType, Tier


class RefusalReason(enum.StrEnum):
    """Why a record will not run here; the value is the ``reason`` label of the refusal metric."""

    UNDECODABLE = "undecodable"
    CONTRACT = "contract"
    WRONG_EVENT = "wrong_event"
    POOL = "pool"
    TASK_TYPE = "task_type"


@dataclass(frozen=True, slots=True)
class PendingBatch:
    """A decoded BatchReady and the record it came from (for commits and dead letters)."""

    batch: BatchReady
    tier: Tier
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes | None]] | None
    received_at: float = field(default_factory=time.monotonic)

    @property
    def source(self) -> Partition:
        return (self.topic, self.partition)

    @property
    def label(self) -> str:
        return self.batch.batch_id


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """A consumed record this member will not run, why, and its batch when it could be decoded."""

    tier: Tier
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes | None]] | None
    error: Exception
    reason: RefusalReason
    batch: BatchReady | None = None

    @property
    def source(self) -> Partition:
        return (self.topic, self.partition)

    @property
    def label(self) -> str:
        return (
            self.batch.batch_id if self.batch is not None else f"{self.topic}[{self.partition}]@{self.offset}"
        )


Work = PendingBatch | RejectedRecord


class WorkBuffer:
    """Batches waiting per tier, the one running, and a condition to wait on; thread-safe."""

    def __init__(self, scheduler: TierScheduler) -> None:
        self._scheduler = scheduler
        self._queues: dict[Tier, collections.deque[PendingBatch]] = {
            tier: collections.deque() for tier in Tier
        }
        self._rejected: collections.deque[RejectedRecord] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self.running: Work | None = None

    def put(self, item: Work) -> None:
        with self._cond:
            if isinstance(item, RejectedRecord):
                self._rejected.append(item)
            else:
                self._queues[item.tier].append(item)
            self._cond.notify_all()

    def take(self, timeout: float | None = None) -> Work | None:
        """Block until work is buffered, then return a rejected record or the batch the scheduler picks.

        Returns ``None`` once closed, or when ``timeout`` passes with nothing buffered.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                if self._rejected:
                    self.running = self._rejected.popleft()
                    return self.running
                tier = self._scheduler.choose(tier for tier, queue in self._queues.items() if queue)
                if tier is not None:
                    self.running = self._queues[tier].popleft()
                    return self.running
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return None

    def finished(self) -> None:
        with self._cond:
            self.running = None
            self._cond.notify_all()

    def buffered(self, tier: Tier) -> int:
        with self._cond:
            return len(self._queues[tier]) + sum(1 for item in self._rejected if item.tier is tier)

    def drop(self, partitions: Iterable[Partition] | None = None) -> list[Work]:
        """Remove the buffered work of ``partitions`` (all when ``None``) and return it."""
        wanted = None if partitions is None else set(partitions)
        dropped: list[Work] = []
        with self._cond:
            queues: list[collections.deque[Any]] = [self._rejected, *self._queues.values()]
            for queue in queues:
                keep = [item for item in queue if wanted is not None and item.source not in wanted]
                dropped.extend(item for item in queue if wanted is None or item.source in wanted)
                queue.clear()
                queue.extend(keep)
        return dropped

    def close(self) -> None:
        """Take no more batches: a waiting :meth:`take` returns ``None``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def busy(self) -> bool:
        with self._cond:
            return self.running is not None


def record_key(message: Message) -> bytes | None:
    """A consumed record's key as bytes."""
    key = message.key()
    return key.encode("utf-8") if isinstance(key, str) else key


def record_headers(message: Message) -> list[tuple[str, bytes | None]] | None:
    """A consumed record's headers as (name, bytes) pairs, as the DLQ keeps them."""
    headers = message.headers()
    if headers is None:
        return None
    pairs = headers.items() if isinstance(headers, dict) else headers
    return [(name, value.encode("utf-8") if isinstance(value, str) else value) for name, value in pairs]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a batch record will not run here, and the batch when it could be decoded."""

    error: Exception
    reason: RefusalReason
    batch: BatchReady | None = None


def read_batch(
    codec: Codec, value: bytes, *, topic: str, pool: str, task_types: frozenset[TaskType]
) -> BatchReady | Refusal:
    """Decode and check a record of a batch topic: the batch to run, or why it will not run here."""
    try:
        event = codec.read(value)
    except ContractError as exc:
        # The tasks of a decodable batch that breaks the contract still end (those the view can name).
        return Refusal(exc, RefusalReason.CONTRACT, exc.event if isinstance(exc.event, BatchReady) else None)
    except CodecError as exc:
        return Refusal(exc, RefusalReason.UNDECODABLE)
    if not isinstance(event, BatchReady):
        return Refusal(
            CodecError(f"{topic} carries BatchReady events, got {event.schema_name}"),
            RefusalReason.WRONG_EVENT,
        )
    if event.pool != pool:
        error = UnsupportedTask(
            f"batch for pool {event.pool!r} arrived on a topic of pool {pool!r}, which this member serves"
        )
        return Refusal(error, RefusalReason.POOL, event)
    if event.task_type not in task_types:
        error = UnsupportedTask(f"pool {pool!r} does not run {event.task_type.value} tasks")
        return Refusal(error, RefusalReason.TASK_TYPE, event)
    return event
