"""Which offsets may be committed: per partition, only up to the oldest record still in flight.

A consumer can hold several records of one partition at once (one running, one buffered, a dead letter
just written); committing the newest done one would skip an older one still running if the process
died. Pure bookkeeping, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Partition = tuple[str, int]


@dataclass
class _Track:
    pending: set[int] = field(default_factory=set)
    done: set[int] = field(default_factory=set)


class OffsetTracker:
    """Records offsets as taken and done; says what to commit."""

    def __init__(self) -> None:
        self._tracks: dict[Partition, _Track] = {}

    def take(self, partition: Partition, offset: int) -> None:
        """A record of ``partition`` at ``offset`` was consumed and is now in flight."""
        self._tracks.setdefault(partition, _Track()).pending.add(offset)

    def finish(self, partition: Partition, offset: int) -> int | None:
        """The record is fully handled; return the offset to commit now (next to read), if any."""
        track = self._tracks.get(partition)
        if track is None or offset not in track.pending:
            return None  # forgotten on revocation, or never taken: nothing of ours to commit
        track.pending.discard(offset)
        track.done.add(offset)
        floor = min(track.pending) if track.pending else None
        ready = [done for done in track.done if floor is None or done < floor]
        if not ready:
            return None
        track.done.difference_update(ready)
        return max(ready) + 1

    def forget(self, partition: Partition) -> None:
        """The partition was revoked: its in-flight records belong to the next owner now."""
        self._tracks.pop(partition, None)

    def in_flight(self, partition: Partition) -> int:
        track = self._tracks.get(partition)
        return len(track.pending) if track else 0
