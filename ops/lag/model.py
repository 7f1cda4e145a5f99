"""What one partition of one consumer group looks like at one instant, as plain values.

Lag in records is ``log_end - position``; lag in seconds is ``at - timestamp`` of the oldest record
the group has not consumed yet, the record *at* its position (read from Kafka, never interpolated from
offsets over wall time, so it is right for idle topics, bursts and replays), and 0 when caught up.

The position is the committed offset. A group with no commit on a partition starts from the log start
(every Storee consumer uses ``auto.offset.reset=earliest``), so its lag counts from the earliest
available offset; so does a committed offset that retention has already deleted (those records are
gone and cannot wait any more).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Member:
    """A consumer group member, as the group coordinator describes it."""

    client_id: str
    host: str
    member_id: str = ""


@dataclass(frozen=True, slots=True)
class PartitionReading:
    """One partition of one group read at wall-clock time ``at`` (seconds since the epoch).

    ``committed`` is ``None`` when the group never committed on the partition; ``oldest_timestamp`` is
    the timestamp (seconds) of the record at :attr:`position`, ``None`` when caught up or unknown (for
    example when only transaction markers remain); ``member`` is ``None`` when nobody is assigned.
    """

    group: str
    topic: str
    partition: int
    at: float
    committed: int | None
    log_start: int
    log_end: int
    oldest_timestamp: float | None = None
    member: Member | None = None

    @property
    def key(self) -> PartitionKey:
        return (self.group, self.topic, self.partition)

    @property
    def position(self) -> int:
        """Where the group reads next: its commit, or the log start when it has none (or it was deleted)."""
        if self.committed is None:
            return self.log_start
        return max(self.committed, self.log_start)

    @property
    def lag(self) -> int:
        return max(0, self.log_end - self.position)

    @property
    def lag_seconds(self) -> float | None:
        """Age of the oldest unconsumed record: 0 when caught up, ``None`` when its timestamp is unknown."""
        if self.lag == 0:
            return 0.0
        if self.oldest_timestamp is None:
            return None
        return max(0.0, self.at - self.oldest_timestamp)  # clocks may disagree a little


PartitionKey = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class GroupReading:
    """One consumer group at one instant: its state, members and the partitions it consumes."""

    group: str
    state: str
    members: tuple[Member, ...]
    partitions: tuple[PartitionReading, ...]


@dataclass(frozen=True, slots=True)
class Observation:
    """Every group read in one pass, and how long the pass took."""

    at: float
    duration_s: float
    groups: tuple[GroupReading, ...]
