"""Prometheus metrics of the stream processors, in a registry of their own (one per app or test)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_MS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0)


# The agents that dead-letter records (their ``AGENT`` names).
DEAD_LETTERING_AGENTS = ("splitter", "batcher", "materializer")


class StreamMetrics:
    """Events in and out per agent, batch sizes and waits, pending tasks, view writes, dead letters."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_in = Counter(
            "storee_streams_events_in", "Records consumed, by agent", ["agent"], registry=r
        )
        self.events_out = Counter(
            "storee_streams_events_out",
            "Events produced, by agent and event type",
            ["agent", "event"],
            registry=r,
        )
        self.batch_size = Histogram(
            "storee_streams_batch_size", "Tasks per BatchReady", ["pool", "tier"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r,
        )  # fmt: skip
        # Triton's figure: inferences / executions, here tasks batched / batches closed.
        self.batch_size_average = Gauge(
            "storee_streams_batch_size_average", "Tasks batched divided by batches closed", registry=r
        )
        self.batch_wait = Histogram(
            "storee_streams_batch_wait_seconds", "How long a batch's oldest task waited", ["reason"],
            buckets=_MS_BUCKETS, registry=r,
        )  # fmt: skip
        self.pending = Gauge(
            "storee_streams_pending_tasks",
            "Tasks waiting in open batches, by signature",
            ["signature"],
            registry=r,
        )
        self.view_write = Histogram(
            "storee_streams_view_write_seconds",
            "One bulk write of the job view",
            buckets=_MS_BUCKETS,
            registry=r,
        )
        self.view_docs = Counter(
            "storee_streams_view_documents_written", "Job-view documents written", registry=r
        )
        self.view_reads = Counter(
            "storee_streams_view_story_reads",
            "Stories a view flush needed, by where their documents came from (cache or store)",
            ["source"],
            registry=r,
        )
        self.dlq = Counter("storee_streams_dlq", "Records sent to the DLQ, by agent", ["agent"], registry=r)
        self.outage_retries = Counter(
            "storee_streams_outage_retries",
            "Flushes retried in place because Kafka or MongoDB was unavailable, by agent and cause",
            ["agent", "cause"],
            registry=r,
        )
        self.waiting = Gauge(
            "storee_streams_waiting_for_dependency",
            "1 while an agent waits out an outage of Kafka or MongoDB",
            ["agent"],
            registry=r,
        )
        for agent in DEAD_LETTERING_AGENTS:  # at 0 from the start, so rate() sees the first dead letter
            self.dlq.labels(agent)
        self._tasks_batched = 0
        self._batches = 0

    def batch_closed(self, pool: str, tier: str, size: int, waited_s: float, reason: str) -> None:
        self.batch_size.labels(pool, tier).observe(size)
        self.batch_wait.labels(reason).observe(waited_s)
        self._tasks_batched += size
        self._batches += 1
        self.batch_size_average.set(self._tasks_batched / self._batches)
