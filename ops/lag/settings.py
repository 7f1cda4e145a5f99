"""Settings of the lag tooling, read once from the environment by the command and ``storee up``.

``LAG_WINDOW_S`` [120]: the sliding window of the status rules; it must be longer than a healthy
consumer's longest pause between commits (a GPU member commits after its batch has run), or STALL
fires on work in progress. ``LAG_WARN_SECONDS`` [60]: WARN when the oldest waiting record of an
untiered stage (splitter, batcher, materializer, other groups) is older; ``LAG_WARN_SECONDS_PREMIUM``
[30] and ``LAG_WARN_SECONDS_FREE`` [300] for the GPU tiers (0 turns a threshold off).
``LAG_SAMPLE_INTERVAL_S`` [10]: how often the exporter observes. ``LAG_FETCH_TIMEOUT_S`` [5]: how long
one observation waits for Kafka. ``LAG_EXPORTER_PORT`` [9308; 0: off] and ``LAG_EXPORTER_HOST``
[127.0.0.1]: where ``storee up`` serves the exporter.

The end-to-end probe (:mod:`ops.lag.prober`), run by the exporter (``storee lag serve`` and ``storee
up``): ``LAG_PROBE_INTERVAL_S`` [30; 0: off]: seconds between probe rounds (one probe story per tier);
``LAG_PROBE_TIMEOUT_S`` [60]: a probe that has not reached every stage by then counts as a timeout;
``LAG_PROBE_POOL`` [default]: the pool whose path the probe takes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ops.runtime.config import Env
from schemas.records import Tier


@dataclass(frozen=True, slots=True)
class LagSettings:
    window_s: float = 120.0
    warn_seconds: float = 60.0
    warn_seconds_premium: float = 30.0
    warn_seconds_free: float = 300.0
    sample_interval_s: float = 10.0
    fetch_timeout_s: float = 5.0
    exporter_host: str = "127.0.0.1"
    exporter_port: int = 9308
    probe_interval_s: float = 30.0
    probe_timeout_s: float = 60.0
    probe_pool: str = "default"

    @classmethod
    def from_env(cls, env: Env | None = None) -> LagSettings:
        env = env or Env()
        return cls(
            window_s=env.float("LAG_WINDOW_S", 120.0, minimum=0.1),
            warn_seconds=env.float("LAG_WARN_SECONDS", 60.0, minimum=0.0),
            warn_seconds_premium=env.float("LAG_WARN_SECONDS_PREMIUM", 30.0, minimum=0.0),
            warn_seconds_free=env.float("LAG_WARN_SECONDS_FREE", 300.0, minimum=0.0),
            sample_interval_s=env.float("LAG_SAMPLE_INTERVAL_S", 10.0, minimum=0.05),
            fetch_timeout_s=env.float("LAG_FETCH_TIMEOUT_S", 5.0, minimum=0.1),
            exporter_host=env.str("LAG_EXPORTER_HOST", "127.0.0.1"),
            exporter_port=env.int("LAG_EXPORTER_PORT", 9308, minimum=0, maximum=65535),
            probe_interval_s=env.float("LAG_PROBE_INTERVAL_S", 30.0, minimum=0.0),
            probe_timeout_s=env.float("LAG_PROBE_TIMEOUT_S", 60.0, minimum=1.0),
            probe_pool=env.str("LAG_PROBE_POOL", "default"),
        )

    def warn_seconds_for(self, tier: str) -> float:
        """The lag-seconds WARN threshold of a tier (``all``: the untiered one)."""
        if tier == Tier.PREMIUM.value:
            return self.warn_seconds_premium
        if tier == Tier.FREE.value:
            return self.warn_seconds_free
        return self.warn_seconds  # NO_TIER and any tier Storee does not know
