"""Committing finished records: per partition up to the oldest one still in flight, retried if refused.

The bookkeeping is :class:`~gpu_consumers.offsets.OffsetTracker`'s; this adds the I/O. A commit is
refused during a rebalance (stale generation), after losing the partition, or while Kafka is away:
if the partition is still ours it is retried shortly, with the highest offset owed; if not, the new
owner redoes the records from the last committed offset (idempotently).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from gpu_consumers.offsets import OffsetTracker, Partition

log = logging.getLogger(__name__)

COMMIT_RETRY_S = 0.2


class Committer:
    """Takes, finishes and commits record offsets for the consumers of one member."""

    def __init__(
        self, client_of: Callable[[str], Consumer], is_assigned: Callable[[Partition], bool]
    ) -> None:
        self._client_of = client_of
        self._is_assigned = is_assigned
        self._offsets = OffsetTracker()
        self._owed: dict[Partition, int] = {}
        self._retry_at = 0.0

    def take(self, partition: Partition, offset: int) -> None:
        self._offsets.take(partition, offset)

    def finish(self, partition: Partition, offset: int) -> None:
        """The record is fully handled: commit what that makes committable."""
        commit_at = self._offsets.finish(partition, offset)
        if commit_at is not None:
            self._commit(partition, commit_at)

    def forget(self, partition: Partition) -> None:
        """The partition was revoked: its in-flight records and owed commits belong to the next owner."""
        self._offsets.forget(partition)
        self._owed.pop(partition, None)

    def retry(self) -> None:
        """Retry the commits that were refused, once their pause has passed."""
        if not self._owed or time.monotonic() < self._retry_at:
            return
        for partition, offset in list(self._owed.items()):
            if self._is_assigned(partition):
                self._commit(partition, offset)
            else:
                self._owed.pop(partition, None)

    @property
    def owed(self) -> dict[Partition, int]:
        return dict(self._owed)

    def _commit(self, partition: Partition, offset: int) -> None:
        topic, number = partition
        try:
            self._client_of(topic).commit(offsets=[TopicPartition(topic, number, offset)], asynchronous=False)
            log.debug("committed topic=%s partition=%d offset=%d", topic, number, offset)
            self._owed.pop(partition, None)
        except KafkaException as exc:
            log.warning("commit failed topic=%s partition=%d offset=%d error=%s", topic, number, offset, exc)
            if self._is_assigned(partition):
                self._owed[partition] = max(offset, self._owed.get(partition, 0))
                self._retry_at = time.monotonic() + COMMIT_RETRY_S
