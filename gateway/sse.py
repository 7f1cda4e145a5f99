"""Server-Sent Events for a story's progress stream: framing, event ids and the resume rules (pure).

An event id is the position of the ``task.events`` record it carries, ``<partition>-<offset>``; the
snapshot's id is the position of the last record of the story's partition the stream had seen when it
was taken (``-1``: none yet). A client that reconnects with ``Last-Event-ID`` gets every record of the
story after that position, once: :class:`Cursor` admits each offset at most once and in order, whether it
came from the replay of the partition or from the live fan-out.

The story's partition is the one its key (the story id) hashes to with Kafka's default partitioner
(murmur2, as ``ops.runtime.kafka``'s producers, Java clients and Faust place keyed records).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from gateway.exceptions import InvalidRequest
from schemas.events import (
    Event,
    StoryCancelled,
    StoryCompleted,
    TaskCompleted,
    TaskExpired,
    TaskFailed,
    TaskProgress,
    TaskStarted,
)

SNAPSHOT = "snapshot"
EVENT_NAMES: dict[type[Event], str] = {
    TaskStarted: "task.started",
    TaskProgress: "task.progress",
    TaskCompleted: "task.completed",
    TaskFailed: "task.failed",
    TaskExpired: "task.expired",
    StoryCancelled: "story.cancelled",
    StoryCompleted: "story.completed",
}
# The materializer emits StoryCompleted once for every ending (completed, failed, cancelled, expired).
TERMINAL: tuple[type[Event], ...] = (StoryCompleted,)
RETRY_MS = 2_000  # how long an EventSource waits before it reconnects
_EVENT_ID = re.compile(r"(\d{1,9})-(-1|\d{1,19})")


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A record's place in ``task.events``: the stream's event id."""

    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.partition}-{self.offset}"


def parse_event_id(raw: str | None, *, partition: int) -> Position | None:
    """The position a ``Last-Event-ID`` names, or None when there is none; 422 for one this API never
    sent for this story (malformed, or another partition than the story's)."""
    if raw is None or not raw.strip():
        return None
    found = _EVENT_ID.fullmatch(raw.strip())
    if found is None:
        raise InvalidRequest(
            f"Last-Event-ID must be <partition>-<offset> as this stream sent it, got {raw[:40]!r}",
            field="Last-Event-ID",
        )
    position = Position(int(found.group(1)), int(found.group(2)))
    if position.partition != partition:
        raise InvalidRequest(
            f"Last-Event-ID {position} is not from this story's stream (its partition is {partition})",
            field="Last-Event-ID",
        )
    return position


def frame(name: str, data: Any, event_id: Position | None = None) -> bytes:
    """One SSE event: ``id``, ``event`` and one ``data`` line of compact JSON."""
    lines = [] if event_id is None else [f"id: {event_id}"]
    lines += [f"event: {name}", "data: " + json.dumps(data, separators=(",", ":"), default=str)]
    return ("\n".join(lines) + "\n\n").encode()


def comment(text: str) -> bytes:
    """An SSE comment line: clients ignore it, proxies see traffic (the keep-alive)."""
    return f": {text}\n\n".encode()


def retry_hint(retry_ms: int = RETRY_MS) -> bytes:
    return f"retry: {retry_ms}\n\n".encode()


def event_name(event: Event) -> str:
    return EVENT_NAMES.get(type(event), type(event).__name__)


def event_data(event: Event) -> dict[str, Any]:
    """The event's fields as JSON values (enums as strings, records as objects), and its type."""
    return {"type": type(event).__name__, **event.to_record()}


def is_terminal(event: Event) -> bool:
    return isinstance(event, TERMINAL)


class Cursor:
    """The last position sent on one stream: admits each later offset once, in order."""

    def __init__(self, partition: int, last: int) -> None:
        self.partition = partition
        self.last = last

    def admit(self, position: Position) -> bool:
        """Whether ``position`` is new to this stream; it then becomes the last one sent."""
        if position.partition != self.partition or position.offset <= self.last:
            return False
        self.last = position.offset
        return True


def story_partition(story_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives the key ``story_id`` among ``partitions``."""
    return (murmur2(story_id.encode()) & 0x7FFFFFFF) % partitions


def murmur2(data: bytes) -> int:
    """MurmurHash2 as the Java client's ``Utils.murmur2`` computes it (seed 0x9747b28c), unsigned."""
    mask, m = 0xFFFFFFFF, 0x5BD1E995
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    rest = length % 4
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h


@dataclass(frozen=True, slots=True)
class StreamTimer:
    """When an open stream next wakes (a keep-alive is due) and whether it must end by then."""

    keepalive_s: float
    idle_timeout_s: float
    max_duration_s: float
    opened_at: float

    def next(self, now: float, last_event_at: float) -> tuple[float, str | None]:
        """Seconds to wait for an event, or ``(0, reason)`` when the stream ends now (idle, too long)."""
        if now - self.opened_at >= self.max_duration_s:
            return 0.0, f"the stream reached its maximum duration of {self.max_duration_s:g}s"
        if now - last_event_at >= self.idle_timeout_s:
            return 0.0, f"no event for {self.idle_timeout_s:g}s"
        remaining = min(
            self.max_duration_s - (now - self.opened_at), self.idle_timeout_s - (now - last_event_at)
        )
        return min(self.keepalive_s, remaining), None
