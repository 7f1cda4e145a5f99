"""The exporter as a running service: a reader, a sampler thread, the HTTP server and, with
``LAG_PROBE_INTERVAL_S`` > 0, the end-to-end prober's thread (:mod:`ops.lag.prober`), started and
stopped together (``storee lag serve`` and ``storee up``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ops.lag.exporter import LagExporter
from ops.lag.groups import WatchedGroup
from ops.lag.monitor import LagMonitor, LagSampler
from ops.lag.probe import probe_target
from ops.lag.prober import ProbeLoop, ProbeMetrics, Prober
from ops.lag.reader import LagReader
from ops.lag.settings import LagSettings

log = logging.getLogger(__name__)


@dataclass
class LagService:
    reader: LagReader
    sampler: LagSampler
    exporter: LagExporter
    prober: ProbeLoop | None = None

    @property
    def url(self) -> str:
        return self.exporter.url

    def stop(self) -> None:
        if self.prober is not None:
            self.prober.stop()
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
    return LagService(reader, sampler, exporter, _start_prober(bootstrap_servers, groups, settings, exporter))


def _start_prober(
    bootstrap_servers: str, groups: Sequence[WatchedGroup], settings: LagSettings, exporter: LagExporter
) -> ProbeLoop | None:
    """The probe loop on the pool ``LAG_PROBE_POOL``, or ``None`` when off or its path is not watched."""
    if settings.probe_interval_s <= 0:
        return None
    target = probe_target(groups, settings.probe_pool)
    if target is None:
        log.warning("end-to-end probe off: the stages of pool %r are not all watched", settings.probe_pool)
        return None
    prober = Prober(bootstrap_servers, target, timeout_s=settings.probe_timeout_s)
    loop = ProbeLoop(prober, ProbeMetrics(exporter.registry), settings.probe_interval_s)
    loop.start()
    log.info("end-to-end probe every %.1fs on pool %s", settings.probe_interval_s, settings.probe_pool)
    return loop
