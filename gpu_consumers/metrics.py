"""A GPU consumer's metrics: Prometheus series plus the few raw figures the benchmarks read.

Each consumer gets its own registry (no module-level metric objects), served on ``METRICS_PORT``
when set. Busy ratio is pipeline time over wall time since the first batch started: the share of its
accelerator a member actually used.
"""

from __future__ import annotations

import collections
import threading
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gpu_consumers.outcomes import TaskOutcome
from gpu_consumers.work import RefusalReason
from schemas.records import Tier

_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
_SECONDS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class ConsumerMetrics:
    """Counters, histograms and the busy-ratio clock of one consumer."""

    def __init__(self, pool: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.pool = pool
        labels = {"pool": pool}
        self.batches = Counter(
            "storee_gpu_batches", "Batches run, by tier", ["pool", "tier"], registry=self.registry
        )
        self.batch_size = Histogram(
            "storee_gpu_batch_size",
            "Tasks per batch",
            ["pool"],
            buckets=_SIZE_BUCKETS,
            registry=self.registry,
        ).labels(**labels)
        self.queue_wait = Histogram(
            "storee_gpu_queue_wait_seconds",
            "From BatchReady to pipeline start",
            ["pool", "tier"],
            buckets=_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.pipeline_seconds = Histogram(
            "storee_gpu_pipeline_seconds",
            "Pipeline call wall time per batch",
            ["pool"],
            buckets=_SECONDS_BUCKETS,
            registry=self.registry,
        ).labels(**labels)
        self.overhead_seconds = Histogram(
            "storee_gpu_batch_overhead_seconds",
            "Per-batch time outside the pipeline call",
            ["pool"],
            buckets=_SECONDS_BUCKETS,
            registry=self.registry,
        ).labels(**labels)
        # outcome: completed, reused (completed before, re-announced without rendering), failed,
        # expired, cancelled (skipped without an event), probe (the end-to-end probe, ended unrendered).
        self.tasks = Counter(
            "storee_gpu_tasks", "Tasks by end state", ["pool", "outcome"], registry=self.registry
        )
        self.failures = Counter(
            "storee_gpu_failures",
            "Failed pipeline calls by error class",
            ["pool", "error_class"],
            registry=self.registry,
        )
        self.batches_aborted = Counter(
            "storee_gpu_batches_aborted",
            "Batches whose handling failed: their open tasks failed, the record dead-lettered",
            ["pool", "error_class"],
            registry=self.registry,
        )
        self.records_refused = Counter(
            "storee_gpu_records_refused",
            "Batch records not run: undecodable, or for a pool or task type this member cannot run",
            ["pool", "reason"],
            registry=self.registry,
        )
        self.delivery_waits = Counter(
            "storee_gpu_delivery_waits",
            "Backoff waits while Kafka did not acknowledge result events",
            ["pool"],
            registry=self.registry,
        ).labels(**labels)
        self.delivery_wait_seconds = Counter(
            "storee_gpu_delivery_wait_seconds",
            "Seconds spent waiting out Kafka before result events were acknowledged",
            ["pool"],
            registry=self.registry,
        ).labels(**labels)
        self.cancellations = Counter(
            "storee_gpu_cancellations_seen",
            "StoryCancelled events the cancellation watcher read",
            ["pool"],
            registry=self.registry,
        ).labels(**labels)
        self.busy_ratio = Gauge(
            "storee_gpu_busy_ratio",
            "Pipeline time / wall time since the first batch",
            ["pool"],
            registry=self.registry,
        ).labels(**labels)
        # Every series a dashboard rates exists from the start at 0: a labelled counter that first
        # appears at 1 hides its first increment from rate().
        for tier in Tier:
            self.batches.labels(pool, tier.value)
            self.queue_wait.labels(pool, tier.value)
        for outcome in TaskOutcome:
            self.tasks.labels(pool, outcome.value)
        for reason in RefusalReason:
            self.records_refused.labels(pool, reason.value)
        self._lock = threading.Lock()
        self._first_start: float | None = None
        self._pipeline_total = 0.0
        # Raw figures for benchmarks, bounded so a long-running consumer does not grow without limit.
        self.batches_by_tier: collections.Counter[str] = collections.Counter()
        self.overheads: collections.deque[float] = collections.deque(maxlen=100_000)
        # (start, end) monotonic times of each pipeline call.
        self.pipeline_calls: collections.deque[tuple[float, float]] = collections.deque(maxlen=100_000)

    def batch_started(self, tier: str, size: int, queue_wait_s: float) -> None:
        with self._lock:
            if self._first_start is None:
                self._first_start = time.monotonic()
            self.batches_by_tier[tier] += 1
        self.batches.labels(pool=self.pool, tier=tier).inc()
        self.batch_size.observe(size)
        self.queue_wait.labels(pool=self.pool, tier=tier).observe(max(0.0, queue_wait_s))

    def pipeline_ran(self, seconds: float) -> None:
        end = time.monotonic()
        with self._lock:
            self._pipeline_total += seconds
            self.pipeline_calls.append((end - seconds, end))
        self.pipeline_seconds.observe(seconds)
        self.busy_ratio.set(self.busy())

    def batch_finished(self, overhead_s: float) -> None:
        with self._lock:
            self.overheads.append(overhead_s)
        self.overhead_seconds.observe(overhead_s)
        self.busy_ratio.set(self.busy())

    def task_outcome(self, outcome: str, count: int = 1) -> None:
        if count:
            self.tasks.labels(pool=self.pool, outcome=outcome).inc(count)

    def failure(self, error_class: str) -> None:
        self.failures.labels(pool=self.pool, error_class=error_class).inc()

    def batch_aborted(self, error_class: str) -> None:
        self.batches_aborted.labels(pool=self.pool, error_class=error_class).inc()

    def record_refused(self, reason: str) -> None:
        self.records_refused.labels(pool=self.pool, reason=reason).inc()

    def delivery_waited(self, seconds: float) -> None:
        self.delivery_waits.inc()
        self.delivery_wait_seconds.inc(seconds)

    def cancellation_seen(self) -> None:
        self.cancellations.inc()

    def count(self, name: str, **labels: str) -> float:
        """The current value of one series (for tests and benchmarks), 0 when it was never set."""
        value = self.registry.get_sample_value(name, {"pool": self.pool, **labels})
        return value or 0.0

    def busy(self) -> float:
        """Pipeline seconds over wall seconds since the first batch started (0 before any)."""
        with self._lock:
            if self._first_start is None:
                return 0.0
            wall = time.monotonic() - self._first_start
            return self._pipeline_total / wall if wall > 0 else 0.0

    @property
    def pipeline_total(self) -> float:
        with self._lock:
            return self._pipeline_total
