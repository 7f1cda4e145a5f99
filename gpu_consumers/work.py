"""The hand-off between the polling thread and the pipeline thread: buffered batches per tier.

The polling thread puts decoded batches in; the pipeline thread takes the next one the
:class:`TierScheduler` picks and hands it back done. The polling thread pauses a tier's partitions
while that tier has a batch buffered, so each consumer holds at most one running batch and about
one buffered batch per tier: a crash loses nothing but uncommitted offsets, and a tier's next batch is
fetched while the current one runs, so the scheduler sees every backlogged tier when it chooses.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import Message

from gpu_consumers.offsets import Partition
from gpu_consumers.scheduler import TierScheduler
from schemas.events import BatchReady
from schemas.records import Tier


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


class WorkBuffer:
    """Batches waiting per tier, the one running, and a condition to wait on; thread-safe."""

    def __init__(self, scheduler: TierScheduler) -> None:
        self._scheduler = scheduler
        self._queues: dict[Tier, collections.deque[PendingBatch]] = {
            tier: collections.deque() for tier in Tier
        }
        self._cond = threading.Condition()
        self._closed = False
        self.running: PendingBatch | None = None

    def put(self, pending: PendingBatch) -> None:
        with self._cond:
            self._queues[pending.tier].append(pending)
            self._cond.notify_all()

    def take(self, timeout: float | None = None) -> PendingBatch | None:
        """Block until a batch is buffered, then return the one the scheduler picks (``None`` if closed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._closed:
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
            return len(self._queues[tier])

    def drop(self, partitions: Iterable[Partition] | None = None) -> list[PendingBatch]:
        """Remove the buffered batches of ``partitions`` (all when ``None``) and return them."""
        wanted = None if partitions is None else set(partitions)
        dropped: list[PendingBatch] = []
        with self._cond:
            for queue in self._queues.values():
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
