"""Small factories for stream-processor tests: stories, tasks and result events with fixed times.

The event builders are shared with the benches, in :mod:`ops.bench.streams_data`; what only tests use
is here.
"""

from __future__ import annotations

from ops.bench.streams_data import (
    POOL,
    T0,
    cancelled,
    completed,
    expired,
    failed,
    params,
    progress,
    started,
    story,
)
from streams.splitting import SplitPolicy

__all__ = [
    "POLICY", "POOL", "T0", "cancelled", "completed", "expired", "failed", "params", "progress", "started",
    "story",
]  # fmt: skip

POLICY = SplitPolicy(max_scenes=8, scene_max_chars=80, task_ttl_ms=300_000)
