"""Reading the DLQ topic: an assign-only consumer (no group membership, no commits), bounded reads.

A scan reads every partition from a start time (or the beginning) up to the end it had when the scan
began, so it always finishes; letters and replay markers come back classified (:mod:`ops.dlq.letters`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from ops.dlq.exceptions import DlqError, LetterNotFound
from ops.dlq.letters import Letter, LetterId, Marker, RawRecord, classify
from ops.runtime.kafka import make_consumer, raise_for_error

# librdkafka wants a group id even for an assigned consumer; it never joins or commits under it.
READER_GROUP = "storee-dlq-reader"
OFFSET_BEGINNING = -2


class DlqReader:
    """Reads one DLQ topic by assignment only."""

    def __init__(self, bootstrap_servers: str, topic: str, *, timeout_s: float = 30.0) -> None:
        self.topic = topic
        self.timeout_s = timeout_s
        self._consumer: Consumer = make_consumer(bootstrap_servers, READER_GROUP)

    def partitions(self) -> list[int]:
        try:
            meta = self._consumer.list_topics(self.topic, timeout=self.timeout_s).topics.get(self.topic)
        except KafkaException as exc:
            raise DlqError(f"could not read the topics of the cluster: {exc}") from exc
        if meta is None or meta.error is not None or not meta.partitions:
            raise DlqError(f"the DLQ topic {self.topic} does not exist (storee topics ensure creates it)")
        return sorted(meta.partitions)

    def existing_topics(self) -> frozenset[str]:
        """The names of the cluster's topics (where a replay may go)."""
        try:
            return frozenset(self._consumer.list_topics(timeout=self.timeout_s).topics)
        except KafkaException as exc:
            raise DlqError(f"could not read the topics of the cluster: {exc}") from exc

    def scan(self, since_ms: int | None = None) -> tuple[list[Letter], list[Marker]]:
        """Every letter and marker from ``since_ms`` (record time; None: the beginning) to the end."""
        partitions = self.partitions()
        starts = self._starts(partitions, since_ms)
        ends = {p: self._watermarks(p)[1] for p in partitions}
        todo = {p: starts[p] for p in partitions if starts[p] < ends[p]}
        letters: list[Letter] = []
        markers: list[Marker] = []
        if not todo:
            return letters, markers
        self._consumer.assign([TopicPartition(self.topic, p, offset) for p, offset in todo.items()])
        deadline = time.monotonic() + self.timeout_s
        try:
            while todo:
                if time.monotonic() > deadline:
                    raise DlqError(f"reading {self.topic} did not reach its end within {self.timeout_s:.0f}s")
                for message in self._consumer.consume(1000, timeout=0.5):
                    if message.error() is not None:
                        raise_for_error(message)
                        continue
                    partition, offset = message.partition() or 0, message.offset() or 0
                    if partition not in todo or offset >= ends[partition]:
                        continue
                    found = classify(raw_record(message))
                    (markers if isinstance(found, Marker) else letters).append(found)  # type: ignore[arg-type]
                    if offset + 1 >= ends[partition]:
                        del todo[partition]
        finally:
            self._consumer.unassign()
        return letters, markers

    def fetch(self, ids: Iterable[LetterId]) -> list[Letter]:
        """The letters with these ids; :class:`LetterNotFound` naming the first one that is not there."""
        partitions = set(self.partitions())
        found = []
        for letter_id in sorted(set(ids)):
            if letter_id.partition not in partitions:
                raise LetterNotFound(f"{letter_id}: {self.topic} has no partition {letter_id.partition}")
            low, high = self._watermarks(letter_id.partition)
            if not low <= letter_id.offset < high:
                raise LetterNotFound(
                    f"{letter_id}: partition {letter_id.partition} of {self.topic} holds offsets "
                    f"{low}..{high - 1} (older ones are past retention)"
                )
            record = self._one(letter_id)
            letter = classify(record)
            if isinstance(letter, Marker):
                raise LetterNotFound(f"{letter_id} is a replay marker (of {letter.of}), not a dead letter")
            found.append(letter)
        return found

    def close(self) -> None:
        self._consumer.close()

    def _one(self, letter_id: LetterId) -> RawRecord:
        self._consumer.assign([TopicPartition(self.topic, letter_id.partition, letter_id.offset)])
        deadline = time.monotonic() + self.timeout_s
        try:
            while time.monotonic() < deadline:
                for message in self._consumer.consume(1, timeout=0.5):
                    if message.error() is None and message.offset() == letter_id.offset:
                        return raw_record(message)
                    raise_for_error(message)
        finally:
            self._consumer.unassign()
        raise LetterNotFound(f"{letter_id}: no record came back within {self.timeout_s:.0f}s")

    def _watermarks(self, partition: int) -> tuple[int, int]:
        try:
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=self.timeout_s
            )
        except KafkaException as exc:
            raise DlqError(f"could not read the offsets of {self.topic}[{partition}]: {exc}") from exc
        return int(low), int(high)

    def _starts(self, partitions: list[int], since_ms: int | None) -> dict[int, int]:
        if since_ms is None:
            return {p: self._watermarks(p)[0] for p in partitions}
        wanted = [TopicPartition(self.topic, p, max(since_ms, 0)) for p in partitions]
        try:
            found = self._consumer.offsets_for_times(wanted, timeout=self.timeout_s)
        except KafkaException as exc:
            raise DlqError(f"could not look up {self.topic}'s offsets by time: {exc}") from exc
        # -1: nothing at or after that time, so the partition's end.
        return {
            tp.partition: tp.offset if tp.offset >= 0 else self._watermarks(tp.partition)[1] for tp in found
        }


def raw_record(message: Message) -> RawRecord:
    timestamp = message.timestamp()[1]
    pairs: list[Any] = list(message.headers() or [])
    headers = tuple((str(name), value.encode() if isinstance(value, str) else value) for name, value in pairs)
    return RawRecord(
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        timestamp_ms=int(timestamp),
        key=message.key(),
        value=message.value(),
        headers=headers,
    )
