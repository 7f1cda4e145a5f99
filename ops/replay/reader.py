"""The thin Kafka shell of ``storee replay``: read a group and its logs, read record times, apply.

Reads: one ``describe_consumer_groups`` (state and members), one ``list_consumer_group_offsets``, one
``describe_topics``, ``list_offsets`` for the log start and end (the last stable offset, as Storee's
``read_committed`` consumers see it) and, for the time modes, for the spec's timestamp. Record times
come from one consumer that only assigns partitions itself: it never subscribes, joins the group or
commits (``enable.auto.commit`` off), so reading a plan changes nothing. Applying is one
``alter_consumer_group_offsets``, which the coordinator refuses for a group with members, so a member
that joined after the plan was read still cannot be overrun.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

from confluent_kafka import (
    OFFSET_INVALID,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from ops.lag.model import Member
from ops.replay.exceptions import ReplayError
from ops.replay.plan import PartitionState, TopicPartitionKey
from ops.runtime.kafka import admin_client, assign_only_consumer, log_offsets, wait_all

T = TypeVar("T")
# A replay's last record may sit behind transaction markers: read a few offsets before the end.
_TAIL = 16


class ReplayReader:
    """Reads what a plan needs and applies it; owns an admin client and one assign-only consumer."""

    def __init__(self, bootstrap_servers: str, *, timeout_s: float = 10.0, client_id: str = "storee-replay"):
        self._admin: AdminClient = admin_client(bootstrap_servers, **{"client.id": client_id})
        self._bootstrap = bootstrap_servers
        self._client_id = client_id
        self._timeout = timeout_s
        self._consumer: Consumer | None = None

    def members(self, group: str) -> tuple[Member, ...]:
        """The group's active members (empty for a group that is empty or does not exist)."""
        description = self._wait(self._admin.describe_consumer_groups([group], request_timeout=self._timeout),
                                 "describe group")[group]  # fmt: skip
        return tuple(Member(m.client_id, m.host, m.member_id) for m in description.members)

    def committed(self, group: str) -> dict[TopicPartitionKey, int]:
        request = [ConsumerGroupTopicPartitions(group)]
        result = self._wait(
            self._admin.list_consumer_group_offsets(request, request_timeout=self._timeout),
            "committed offsets",
        )[group]
        return {
            (tp.topic, tp.partition): tp.offset
            for tp in result.topic_partitions or []
            if tp.offset != OFFSET_INVALID and tp.offset >= 0
        }

    def states(
        self, topics: Iterable[str], committed: Mapping[TopicPartitionKey, int], at_ms: int | None = None
    ) -> list[PartitionState]:
        """Every partition of ``topics`` with its commit, log start and end (and offset at ``at_ms``)."""
        tps = [
            (t, p) for t, count in self.partition_counts(sorted(set(topics))).items() for p in range(count)
        ]
        starts = self._offsets(tps, OffsetSpec.earliest(), "log start")
        ends = self._offsets(tps, OffsetSpec.latest(), "log end")
        at = (
            self._offsets(tps, OffsetSpec.for_timestamp(at_ms), "offsets for time")
            if at_ms is not None
            else {}
        )
        return [
            PartitionState(t, p, committed.get((t, p)), starts[(t, p)], ends[(t, p)], at.get((t, p)))
            for t, p in tps
        ]

    def partition_counts(self, topics: list[str]) -> dict[str, int]:
        if not topics:
            return {}
        futures = self._admin.describe_topics(TopicCollection(topics), request_timeout=self._timeout)
        counts = {}
        for name, future in futures.items():
            try:
                counts[name] = len(future.result(timeout=self._timeout).partitions)
            except KafkaException as exc:
                if exc.args and exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise ReplayError(f"topic {name} does not exist") from None
                raise ReplayError(f"describe topic {name}: {exc}") from exc
        return counts

    def record_times(
        self, ranges: Mapping[TopicPartitionKey, tuple[int, int]]
    ) -> dict[TopicPartitionKey, tuple[int | None, int | None]]:
        """The timestamps (ms) of the first and last record in each inclusive offset range."""
        firsts = self._first_times({tp: first for tp, (first, _) in ranges.items()}, ranges)
        tails = {tp: max(first, last - _TAIL) for tp, (first, last) in ranges.items()}
        lasts = self._last_times(tails, ranges)
        return {tp: (firsts.get(tp), lasts.get(tp)) for tp in ranges}

    def apply(self, group: str, offsets: Mapping[TopicPartitionKey, int]) -> None:
        """Commit ``offsets`` for ``group``; the coordinator refuses while the group has members."""
        request = [
            ConsumerGroupTopicPartitions(group, [TopicPartition(t, p, o) for (t, p), o in offsets.items()])
        ]
        result = self._wait(
            self._admin.alter_consumer_group_offsets(request, request_timeout=self._timeout), "alter offsets"
        )[group]
        failed = [
            f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in result.topic_partitions or [] if tp.error
        ]
        if failed:
            raise ReplayError(f"group {group}: offsets not reset: {'; '.join(failed)}")

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    # -- the reads ------------------------------------------------------------------------------------

    def _offsets(
        self, tps: list[TopicPartitionKey], spec: OffsetSpec, what: str
    ) -> dict[TopicPartitionKey, int]:
        return log_offsets(self._admin, tps, spec, what, self._timeout, ReplayError)

    def _first_times(
        self, starts: Mapping[TopicPartitionKey, int], ranges: Mapping[TopicPartitionKey, tuple[int, int]]
    ) -> dict[TopicPartitionKey, int | None]:
        found: dict[TopicPartitionKey, int | None] = {}
        for tp, _, ms in self._scan(starts, ranges, stop_at_first=True):
            found.setdefault(tp, ms)
        return found

    def _last_times(
        self, starts: Mapping[TopicPartitionKey, int], ranges: Mapping[TopicPartitionKey, tuple[int, int]]
    ) -> dict[TopicPartitionKey, int | None]:
        found: dict[TopicPartitionKey, int | None] = {}
        for tp, _, ms in self._scan(starts, ranges, stop_at_first=False):
            found[tp] = ms  # records come in offset order: the last one wins
        return found

    def _scan(
        self,
        starts: Mapping[TopicPartitionKey, int],
        ranges: Mapping[TopicPartitionKey, tuple[int, int]],
        *,
        stop_at_first: bool,
    ) -> list[tuple[TopicPartitionKey, int, int | None]]:
        """Records from each start up to its range's last offset (or the first one only)."""
        if not starts:
            return []
        consumer = self._fetcher()
        pending = dict(starts)
        out: list[tuple[TopicPartitionKey, int, int | None]] = []
        assignment = [TopicPartition(t, p, o) for (t, p), o in pending.items()]
        consumer.assign(assignment)
        consumer.resume(assignment)
        deadline = time.monotonic() + self._timeout
        try:
            while pending and time.monotonic() < deadline:
                for message in consumer.consume(num_messages=256, timeout=0.1):
                    tp = (message.topic() or "", message.partition() or 0)
                    if tp not in pending:
                        continue
                    error = message.error()
                    offset = message.offset() or 0
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            raise ReplayError(f"reading {tp[0]}[{tp[1]}]: {error.str()}")
                    elif offset <= ranges[tp][1]:
                        kind, ms = message.timestamp()
                        out.append((tp, offset, None if kind == TIMESTAMP_NOT_AVAILABLE else ms))
                        if not stop_at_first and offset < ranges[tp][1]:
                            continue
                    del pending[tp]
                    consumer.pause([TopicPartition(*tp)])
        finally:
            consumer.unassign()
        return out

    def _fetcher(self) -> Consumer:
        if self._consumer is None:
            self._consumer = assign_only_consumer(
                self._bootstrap,
                f"{self._client_id}/timestamps",
                **{"enable.partition.eof": True, "max.partition.fetch.bytes": 64 * 1024},
            )
        return self._consumer

    def _wait(self, futures: Mapping[Any, Future[T]], what: str) -> dict[Any, T]:
        return wait_all(futures, what, self._timeout, ReplayError)
