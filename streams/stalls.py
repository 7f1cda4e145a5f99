"""Partitions the worker stopped reading: records wait, and the committed offset does not move.

faust-streaming is known to leave a partition unfetched after a rebalance; we saw it in our rebalance
test (twice in about ten runs: one partition of tasks.requested never delivered again). Nothing is lost
(offsets are not committed past unread records) but the stories on it would wait forever. The watch
sees it; the app first seeks the partition back to its committed offset and resumes it, and if it still
does not move, crashes the worker so that the supervisor restarts it and every partition is read
again from its committed offset.

Pure logic, named for what it computes; its I/O shell is :mod:`streams.stall_agent`.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Remedy(enum.Enum):
    NUDGE = "nudge"  # seek back to the committed offset and resume
    RESTART = "restart"  # the nudge did not help


@dataclass
class StallWatch(Generic[K]):
    """Pure: feed it ``(committed, end)`` per partition now and then; it says which are stuck."""

    timeout_s: float
    _since: dict[K, tuple[int, float]] = field(default_factory=dict)
    _nudged: dict[K, int] = field(default_factory=dict)

    def observe(self, now: float, offsets: Mapping[K, tuple[int, int]]) -> dict[K, Remedy]:
        """``offsets``: partition -> (committed offset, end offset). Returns what to do per stuck one."""
        remedies: dict[K, Remedy] = {}
        for tp, (committed, end) in offsets.items():
            if end <= committed:  # nothing waits
                self._since.pop(tp, None)
                self._nudged.pop(tp, None)
                continue
            seen = self._since.get(tp)
            if seen is None or seen[0] != committed:  # new lag, or it moved
                self._since[tp] = (committed, now)
                if self._nudged.get(tp, committed) != committed:
                    del self._nudged[tp]  # the nudge worked
                continue
            if now - seen[1] < self.timeout_s:
                continue
            if self._nudged.get(tp) == committed:
                remedies[tp] = Remedy.RESTART
            else:
                remedies[tp] = Remedy.NUDGE
                self._nudged[tp] = committed
                self._since[tp] = (committed, now)  # give the nudge a full timeout
        for tp in set(self._since) - set(offsets):  # no longer ours
            del self._since[tp]
            self._nudged.pop(tp, None)
        return remedies

    def reset(self) -> None:
        """Forget everything (a rebalance started: positions are about to change)."""
        self._since.clear()
        self._nudged.clear()
