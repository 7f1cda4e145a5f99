"""The exporter as a running service: a reader, a sampler thread and the HTTP server, started and
stopped together (``storee lag serve`` and ``storee up``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ops.lag.exporter import LagExporter
from ops.lag.groups import WatchedGroup
from ops.lag.monitor import LagMonitor, LagSampler
from ops.lag.reader import LagReader
from ops.lag.settings import LagSettings

log = logging.getLogger(__name__)


@dataclass
class LagService:
    reader: LagReader
    sampler: LagSampler
    exporter: LagExporter

    @property
    def url(self) -> str:
        return self.exporter.url

    def stop(self) -> None:
        self.exporter.stop()
        self.sampler.stop()
        self.reader.close()


def start_lag_service(
    bootstrap_servers: str,
    groups: Sequence[WatchedGroup],
    settings: LagSettings,
    *,
    host: str,
    port: int,
    interval_s: float | None = None,
) -> LagService:
    """Observe ``groups`` every ``interval_s`` (``LAG_SAMPLE_INTERVAL_S``) and serve them on host:port.

    Raises ``OSError`` when the port cannot be bound; nothing is left running then.
    """
    reader = LagReader(bootstrap_servers, timeout_s=settings.fetch_timeout_s)
    sampler = LagSampler(LagMonitor(reader, groups, settings), interval_s or settings.sample_interval_s)
    try:
        exporter = LagExporter(sampler, host, port)
    except OSError:
        reader.close()
        raise
    sampler.start()
    exporter.start()
    return LagService(reader, sampler, exporter)
