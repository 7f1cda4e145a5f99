"""The stall watchdog's shell: a timer of the Faust app feeds :class:`streams.stalls.StallWatch` (I/O).

The watch (pure) decides; this shell reads the committed offsets and high watermarks of the partitions
the worker owns, and carries out the remedy: it seeks a stuck partition back to its committed offset
and resumes it, and if that did not help, crashes the worker so that its supervisor restarts it.
Named ``*_agent`` because a timer of the Faust app (:mod:`streams.app`) calls it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from typing import Any

from streams.stalls import Remedy, StallWatch
from streams.transport import App

log = logging.getLogger(__name__)


class StalledPartition(RuntimeError):
    """A partition kept records waiting after being sought back to its committed offset."""


class StallWatchdog:
    """Checks, on each call, the partitions of ``topics`` the app owns; ``timeout_s`` 0 turns it off."""

    def __init__(self, app: App, *, topics: Collection[str], timeout_s: float) -> None:
        self.app = app
        self.topics = frozenset(topics)
        self.timeout_s = timeout_s
        self.watch: StallWatch[Any] = StallWatch(timeout_s=timeout_s)

    @property
    def interval_s(self) -> float:
        return max(1.0, self.timeout_s / 6)

    async def check(self) -> None:
        """Nudge, then restart, a worker that stopped reading a partition (see streams.stalls)."""
        app = self.app
        if self.timeout_s <= 0:
            return
        if app.rebalancing or app.in_recovery:
            self.watch.reset()
            return
        tps = [tp for tp in app.assignor.assigned_actives() if tp.topic in self.topics]
        if not tps:
            return
        consumer: Any = app.consumer
        ends = await consumer.highwaters(*tps)
        committed = {tp: consumer._committed_offset.get(tp) or 0 for tp in tps}  # Faust keeps no public copy
        offsets = {tp: (committed[tp], ends[tp]) for tp in tps if tp in ends}
        for tp, remedy in self.watch.observe(time.monotonic(), offsets).items():
            name, waiting = f"{tp.topic}[{tp.partition}]", ends[tp] - committed[tp]
            if remedy is Remedy.RESTART:
                log.error("%s still stuck with %d records waiting: restarting the worker", name, waiting)
                await app.crash(StalledPartition(f"{name} stopped being read"))
                return
            log.warning(
                "%s has %d records waiting and has not moved for %.0fs: "
                "seeking it to its committed offset %d",
                name, waiting, self.timeout_s, committed[tp],
            )  # fmt: skip
            consumer.resume_partitions({tp})
            await consumer.seek(tp, committed[tp])
