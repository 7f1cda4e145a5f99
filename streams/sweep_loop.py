"""The deadline sweeper: any task not started by its deadline ends with TaskExpired, wherever it waits.

The batcher expires the tasks of its open batches and GPU consumers the tasks of the batches they hold,
but a task can also wait where nobody looks at its deadline: in a batch topic whose pool has no running
consumer, behind a partition that stopped, in a task stream nobody batches. The sweeper reads the job
view for tasks still ``queued`` or ``batched`` whose deadline passed ``SWEEP_GRACE`` seconds ago and
emits their TaskExpired on task.events; the materializer then ends them (and the story).

Guarantee: at least once. The TaskExpired of a task has a fixed event id (the one the batcher would
give it), so a sweep repeated by a restart or by a second worker is a duplicate the view counts once. A
task that started after all keeps its run: a completion outranks an expiry in the view. Kafka or
MongoDB being unavailable only delays the next sweep.

An I/O shell, named ``*_loop`` because it is a blocking poll loop in a thread beside the Faust app;
the TaskExpired it sends is built by :func:`streams.expiry.overdue_expired` (pure).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ops.runtime.kafka import DurableProducer, KafkaUnavailable
from schemas.codec import Codec
from schemas.ids import now_ms
from schemas.topics import TopicCatalog
from streams.expiry import overdue_expired
from streams.metrics import StreamMetrics
from streams.view_store import JobViewStore

log = logging.getLogger(__name__)

AGENT = "sweeper"
SWEEP_LIMIT = 1_000


class Sweeper:
    def __init__(
        self,
        *,
        store: JobViewStore,
        producer: DurableProducer,
        codec: Codec,
        catalog: TopicCatalog,
        metrics: StreamMetrics,
        interval_s: float,
        grace_s: float,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.store = store
        self.producer = producer
        self.codec = codec
        self.catalog = catalog
        self.metrics = metrics
        self.interval_s = interval_s
        self.grace_ms = int(grace_s * 1000)
        self.clock = clock
        self._expired = metrics.events_out.labels(AGENT, "TaskExpired")

    def sweep(self) -> int:
        """Expire every overdue task the view shows (up to SWEEP_LIMIT); return how many."""
        now = self.clock()
        docs = self.store.overdue(now - self.grace_ms, SWEEP_LIMIT)
        failures: list[str] = []
        for doc in docs:
            event = overdue_expired(doc, now)
            self.producer.produce(
                self.catalog.task_events,
                self.codec.encode(event),
                key=event.story_id.encode(),
                on_delivery=lambda err, _msg: failures.append(err.str()) if err is not None else None,
            )
            log.info(
                "task_id=%s expired deadline=%d late_ms=%d",
                event.task_id,
                event.deadline,
                now - event.deadline,
            )
        if docs and (self.producer.flush(30) or failures):
            raise KafkaUnavailable(f"TaskExpired not acknowledged: {failures[:3]}")
        self._expired.inc(len(docs))
        return len(docs)

    def run(self, stop: threading.Event) -> None:
        """Sweep every ``interval_s`` until ``stop`` is set."""
        log.info("sweeper started interval_s=%.1f grace_s=%.1f", self.interval_s, self.grace_ms / 1000)
        try:
            while not stop.wait(self.interval_s):
                try:
                    self.sweep()
                except Exception as exc:  # noqa: BLE001 - an outage delays the next sweep, nothing more
                    self.metrics.outage_retries.labels(AGENT, type(exc).__name__).inc()
                    log.warning("sweep failed, trying again in %.1fs: %s", self.interval_s, exc)
        finally:
            self.producer.close()
