"""Records of the DLQ topic read as dead letters or replay markers, and the letter id (pure).

A letter's id is ``<dlq partition>:<dlq offset>`` (``2:41``): short, stable for as long as retention
keeps the record, and enough to fetch it again with one seek. It names a place in the DLQ topic of one
deployment (``TOPIC_PREFIX``), so ids of different prefixes are not comparable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ops.dlq.exceptions import BadLetterId
from schemas.dlq import (
    REPLAY_OF,
    REPLAY_OFFSET,
    REPLAY_PARTITION,
    REPLAY_TOPIC,
    REPLAYED_AT,
    REPLAYED_FROM,
    DeadLetter,
    DeadLetterError,
    is_replay_marker,
)

_ID = re.compile(r"(\d{1,9}):(\d{1,19})")

Headers = tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True, slots=True, order=True)
class LetterId:
    """Where a letter sits in the DLQ topic."""

    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}"

    @classmethod
    def parse(cls, text: str) -> LetterId:
        match = _ID.fullmatch(text.strip())
        if match is None:
            raise BadLetterId(f"a letter id is <partition>:<offset>, like 0:17; got {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record of the DLQ topic as the reader got it."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()


@dataclass(frozen=True, slots=True)
class Letter:
    """A dead letter: the original record and why it failed (``reason`` None: malformed headers)."""

    id: LetterId
    record: RawRecord
    reason: DeadLetter | None
    problem: str = ""

    @property
    def failed_at(self) -> int:
        return self.reason.failed_at if self.reason is not None else self.record.timestamp_ms

    @property
    def origin(self) -> str:
        r = self.reason
        return f"{r.origin_topic}[{r.origin_partition}]@{r.origin_offset}" if r is not None else "?"

    @property
    def replayed_from(self) -> str | None:
        """The id of the letter this record was itself replayed from, when it failed again."""
        return header_text(self.record.headers, REPLAYED_FROM)

    @property
    def size(self) -> int:
        return len(self.record.value or b"")


@dataclass(frozen=True, slots=True)
class Marker:
    """A replay marker: letter ``of`` went back to ``topic[partition]@offset`` at ``at`` (ms)."""

    id: LetterId
    of: str
    topic: str
    partition: int
    offset: int
    at: int


def classify(record: RawRecord) -> Letter | Marker:
    """A DLQ record as the dead letter it is, or the replay marker."""
    record_id = LetterId(record.partition, record.offset)
    if is_replay_marker(record.headers):
        return Marker(
            id=record_id,
            of=header_text(record.headers, REPLAY_OF) or "",
            topic=header_text(record.headers, REPLAY_TOPIC) or "",
            partition=_int(header_text(record.headers, REPLAY_PARTITION)),
            offset=_int(header_text(record.headers, REPLAY_OFFSET)),
            at=_int(header_text(record.headers, REPLAYED_AT)) or record.timestamp_ms,
        )
    try:
        return Letter(record_id, record, DeadLetter.from_headers(record.headers))
    except DeadLetterError as exc:
        return Letter(record_id, record, None, problem=str(exc))


def replays_by_letter(markers: list[Marker]) -> dict[str, list[Marker]]:
    """Every replay marker, grouped by the id of the letter it replayed, oldest first."""
    found: dict[str, list[Marker]] = {}
    for marker in sorted(markers, key=lambda m: (m.at, m.id)):
        found.setdefault(marker.of, []).append(marker)
    return found


def header_text(headers: Headers, name: str) -> str | None:
    """The last header called ``name``, as text (None when absent or valueless)."""
    value = None
    for key, raw in headers:
        if key == name:
            value = raw
    return None if value is None else value.decode("utf-8", errors="replace")


def _int(text: str | None) -> int:
    try:
        return int(text) if text is not None else -1
    except ValueError:
        return -1
