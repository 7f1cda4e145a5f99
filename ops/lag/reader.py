"""The thin Kafka shell of the lag model: one observation of a set of groups, in a few batched reads.

Per observation: one ``describe_consumer_groups`` for all groups, one ``list_consumer_group_offsets``
per group (the API takes one group a request; all are in flight at once), one ``describe_topics`` for
the topics, two ``list_offsets`` for every partition (earliest, and the last stable offset as
``read_committed`` consumers see it). Then the timestamp of the record at each lagging partition's
position, fetched by one consumer that assigns those partitions itself: it never subscribes, joins a
group or commits (``enable.auto.commit`` off), so reading lag changes nothing it measures. A record
never changes at its offset, so timestamps are cached by (topic, partition, offset) and only partitions
whose position moved are fetched again; a steady scrape fetches almost nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import replace
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

from ops.lag.exceptions import LagReadError
from ops.lag.groups import WatchedGroup
from ops.lag.model import GroupReading, Member, Observation, PartitionReading
from ops.runtime.kafka import admin_client, assign_only_consumer, log_offsets, wait_all

log = logging.getLogger(__name__)
T = TypeVar("T")
TopicPartitionKey = tuple[str, int]
# Enough for the first record of a partition, small so a deep backlog is not downloaded to read it.
_FETCH_BYTES = 64 * 1024


class LagReader:
    """Reads :class:`Observation` values; owns an admin client and one assign-only consumer."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
        client_id: str = "storee-lag",
    ) -> None:
        self._admin: AdminClient = admin_client(bootstrap_servers, **{"client.id": client_id})
        self._bootstrap = bootstrap_servers
        self._client_id = client_id
        self._timeout = timeout_s
        self._clock = clock
        self._consumer: Consumer | None = None
        self._timestamps: dict[tuple[str, int, int], float | None] = {}

    def observe(self, groups: Iterable[WatchedGroup]) -> Observation:
        """Read every group of ``groups`` once; :class:`LagReadError` when Kafka does not answer."""
        try:
            return self._observe(tuple(groups))
        except KafkaException as exc:
            raise LagReadError(f"lag observation: {exc}") from exc

    def _observe(self, groups: tuple[WatchedGroup, ...]) -> Observation:
        started = time.monotonic()
        ids = [g.group for g in groups]
        descriptions = self._wait(
            self._admin.describe_consumer_groups(ids, request_timeout=self._timeout), "describe groups"
        )
        offsets = {
            gid: _committed_map(result)
            for gid, result in self._wait(self._committed(ids), "committed offsets").items()
        }
        at = self._clock()
        members = {gid: _members(descriptions[gid]) for gid in ids}
        topics_of = {g.group: _topics(g, offsets[g.group], members[g.group]) for g in groups}
        all_topics = sorted({t for ts in topics_of.values() for t in ts})
        counts = self._partition_counts(all_topics)
        tps = [(t, p) for t in all_topics if t in counts for p in range(counts[t])]
        starts = self._log_offsets(tps, OffsetSpec.earliest(), "log start")
        ends = self._log_offsets(tps, OffsetSpec.latest(), "log end")
        readings: list[GroupReading] = []
        for group in groups:
            gid = group.group
            committed = offsets[gid]
            owners = members[gid][1]
            partitions = tuple(
                PartitionReading(
                    group=gid,
                    topic=t,
                    partition=p,
                    at=at,
                    committed=committed.get((t, p)),
                    log_start=starts[(t, p)],
                    log_end=ends[(t, p)],
                    member=owners.get((t, p)),
                )
                for t in topics_of[gid]
                if t in counts
                for p in range(counts[t])
            )
            readings.append(GroupReading(gid, _state(descriptions[gid]), members[gid][0], partitions))
        with_times = self._with_timestamps(readings)
        return Observation(at, time.monotonic() - started, with_times)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        # An admin client has no close: its librdkafka handle lives (and logs every lost connection)
        # until the object is freed, so let go of it now, before whoever stops the brokers does.
        self._admin = None  # type: ignore[assignment]

    # -- the reads ------------------------------------------------------------------------------------

    def _committed(self, ids: list[str]) -> dict[str, Future[Any]]:
        futures: dict[str, Future[Any]] = {}
        for gid in ids:  # one group per request (the API's rule), all in flight together
            futures.update(
                self._admin.list_consumer_group_offsets(
                    [ConsumerGroupTopicPartitions(gid)], request_timeout=self._timeout
                )
            )
        return futures

    def _partition_counts(self, topics: list[str]) -> dict[str, int]:
        if not topics:
            return {}
        futures = self._admin.describe_topics(TopicCollection(topics), request_timeout=self._timeout)
        counts = {}
        for name, future in futures.items():
            try:
                counts[name] = len(future.result(timeout=self._timeout).partitions)
            except KafkaException as exc:
                if exc.args and exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    log.debug("topic=%s does not exist; left out", name)
                    continue
                raise LagReadError(f"describe topic {name}: {exc}") from exc
        return counts

    def _log_offsets(
        self, tps: list[TopicPartitionKey], spec: OffsetSpec, what: str
    ) -> dict[TopicPartitionKey, int]:
        return log_offsets(self._admin, tps, spec, what, self._timeout, LagReadError)

    def _with_timestamps(self, readings: list[GroupReading]) -> tuple[GroupReading, ...]:
        wanted = {(r.topic, r.partition, r.position) for g in readings for r in g.partitions if r.lag > 0}
        missing = [key for key in wanted if key not in self._timestamps]
        if missing:
            self._timestamps.update(self._fetch_timestamps(missing))
        # Only what this observation needs stays cached: bounded, and exact (records never change).
        self._timestamps = {key: self._timestamps.get(key) for key in wanted}
        return tuple(
            GroupReading(
                g.group,
                g.state,
                g.members,
                tuple(_with_timestamp(r, self._timestamps) for r in g.partitions),
            )
            for g in readings
        )

    def _fetch_timestamps(self, keys: list[tuple[str, int, int]]) -> dict[tuple[str, int, int], float | None]:
        """The timestamp of the first record at or after each (topic, partition, offset), in one pass."""
        consumer = self._fetcher()
        pending = {(t, p): offset for t, p, offset in keys}
        found: dict[tuple[str, int, int], float | None] = {key: None for key in keys}
        assignment = [TopicPartition(t, p, offset) for (t, p), offset in pending.items()]
        consumer.assign(assignment)
        consumer.resume(assignment)  # librdkafka remembers a pause from an earlier fetch across assign()
        deadline = time.monotonic() + self._timeout
        try:
            while pending and time.monotonic() < deadline:
                for message in consumer.consume(num_messages=max(64, len(pending)), timeout=0.1):
                    tp = (message.topic() or "", message.partition() or 0)
                    if tp not in pending:
                        continue
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:  # only transaction markers left
                            del pending[tp]
                            continue
                        raise LagReadError(f"reading {tp[0]}[{tp[1]}]: {error.str()}")
                    offset = pending.pop(tp)
                    kind, ms = message.timestamp()
                    found[(*tp, offset)] = None if kind == TIMESTAMP_NOT_AVAILABLE else ms / 1000.0
                    consumer.pause([TopicPartition(*tp)])
        finally:
            consumer.unassign()
        for t, p in pending:
            log.warning("no record read at topic=%s partition=%s within %.1fs", t, p, self._timeout)
        return found

    def _fetcher(self) -> Consumer:
        if self._consumer is None:
            self._consumer = assign_only_consumer(
                self._bootstrap,
                f"{self._client_id}/timestamps",
                **{
                    "enable.partition.eof": True,
                    "max.partition.fetch.bytes": _FETCH_BYTES,
                    "fetch.max.bytes": 4 * 1024 * 1024,
                    "queued.max.messages.kbytes": 1024,
                },
            )
        return self._consumer

    def _wait(self, futures: Mapping[Any, Future[T]], what: str) -> dict[Any, T]:
        return wait_all(futures, what, self._timeout, LagReadError)


def _members(description: Any) -> tuple[tuple[Member, ...], dict[TopicPartitionKey, Member]]:
    members, owners = [], {}
    for m in description.members:
        member = Member(m.client_id, m.host, m.member_id)
        members.append(member)
        assignment = m.assignment.topic_partitions if m.assignment is not None else []
        for tp in assignment:
            owners[(tp.topic, tp.partition)] = member
    return tuple(members), owners


def _state(description: Any) -> str:
    state = description.state
    return str(getattr(state, "name", state)).lower()


def _committed_map(result: Any) -> dict[TopicPartitionKey, int]:
    return {
        (tp.topic, tp.partition): tp.offset
        for tp in result.topic_partitions or []
        if tp.offset != OFFSET_INVALID and tp.offset >= 0
    }


def _topics(
    group: WatchedGroup,
    offsets: Mapping[TopicPartitionKey, int],
    members: tuple[tuple[Member, ...], dict[TopicPartitionKey, Member]],
) -> list[str]:
    if group.topics:
        return [t.topic for t in group.topics]
    seen = {t for t, _ in offsets} | {t for t, _ in members[1]}
    if group.only_topics:
        seen &= group.only_topics
    return sorted(seen)


def _with_timestamp(
    reading: PartitionReading, timestamps: Mapping[tuple[str, int, int], float | None]
) -> PartitionReading:
    if reading.lag == 0:
        return reading
    return replace(
        reading, oldest_timestamp=timestamps.get((reading.topic, reading.partition, reading.position))
    )
