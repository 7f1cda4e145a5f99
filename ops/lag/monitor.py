"""Observations over time: the windows of readings per partition, and the snapshot each one yields.

:func:`advance_windows` is pure (windows and an observation in, windows out); :class:`LagMonitor` is
the loop's state, fed by a reader; :class:`LagSampler` observes in a thread of its own every interval
and keeps the latest snapshot for the exporter, so a scrape never waits on Kafka.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from ops.lag.groups import WatchedGroup
from ops.lag.model import Observation, PartitionKey, PartitionReading
from ops.lag.settings import LagSettings
from ops.lag.snapshot import LagSnapshot, build_snapshot
from ops.lag.status import advance
from ops.runtime.exceptions import StoreeError

log = logging.getLogger(__name__)
Windows = Mapping[PartitionKey, tuple[PartitionReading, ...]]


class Observer(Protocol):
    def observe(self, groups: Sequence[WatchedGroup]) -> Observation: ...


def advance_windows(
    windows: Windows, observation: Observation, window_s: float
) -> dict[PartitionKey, tuple[PartitionReading, ...]]:
    """Each partition's window with this observation's reading; partitions no longer read are dropped."""
    return {
        reading.key: advance(windows.get(reading.key, ()), reading, window_s)
        for group in observation.groups
        for reading in group.partitions
    }


class LagMonitor:
    """Observes ``groups`` through ``reader`` and judges each observation over the windows so far."""

    def __init__(self, reader: Observer, groups: Sequence[WatchedGroup], settings: LagSettings) -> None:
        self._reader = reader
        self.groups = tuple(groups)
        self.settings = settings
        self._windows: dict[PartitionKey, tuple[PartitionReading, ...]] = {}

    def observe(self) -> LagSnapshot:
        observation = self._reader.observe(self.groups)
        self._windows = advance_windows(self._windows, observation, self.settings.window_s)
        return build_snapshot(observation, self._windows, self.groups, self.settings)


class LagSampler:
    """Runs :meth:`LagMonitor.observe` every ``interval_s`` in a thread; the exporter reads :attr:`latest`."""

    def __init__(
        self,
        monitor: LagMonitor,
        interval_s: float,
        *,
        on_snapshot: Callable[[LagSnapshot], None] | None = None,
    ) -> None:
        self._monitor = monitor
        self._interval = interval_s
        self._on_snapshot = on_snapshot
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._latest: LagSnapshot | None = None
        self._errors = 0
        self._last_duration = 0.0
        self._observed = threading.Event()

    @property
    def interval_s(self) -> float:
        return self._interval

    @property
    def latest(self) -> LagSnapshot | None:
        with self._lock:
            return self._latest

    @property
    def errors(self) -> int:
        with self._lock:
            return self._errors

    @property
    def last_duration_s(self) -> float:
        with self._lock:
            return self._last_duration

    def sample(self) -> LagSnapshot | None:
        """Observe once now; an error is logged and counted, and the previous snapshot stays."""
        started = time.monotonic()
        try:
            snapshot = self._monitor.observe()
        except StoreeError as exc:
            log.warning("lag observation failed: %s", exc)
            with self._lock:
                self._errors += 1
                self._last_duration = time.monotonic() - started
            return None
        with self._lock:
            self._latest = snapshot
            self._last_duration = snapshot.duration_s
        self._observed.set()
        if self._on_snapshot is not None:
            self._on_snapshot(snapshot)
        return snapshot

    def wait_first(self, timeout: float) -> bool:
        return self._observed.wait(timeout)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lag-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.sample()
            self._stop.wait(max(0.0, self._interval - (time.monotonic() - started)))
