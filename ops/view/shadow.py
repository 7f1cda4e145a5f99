"""A materializer of its own, writing one fixed generation of the view from the log's start.

It is the streams materializer (:class:`streams.view_loop.Materializer`, the same reduction and store),
with three differences: its store writes generation ``g`` and never follows the pointer; its consumer
group is its own (``<materializer group>-rebuild-g<g>-<ms>``, new each time, so it starts at the
earliest retained offsets, and deleted when the build stops);
and what it would produce is dropped (:class:`SilentProducer`): StoryCompleted events and dead
letters were produced by the live materializer when it first met those records, and a rebuild must
not send them again. A story completed in the rebuild before its StoryCompleted is re-read is marked
``_completed_emitted`` exactly as the live one is, so the documents are the same.

"Caught up" means the group's committed offsets reached the log end offsets read at one instant; the
materializer commits only after it wrote, so everything below them is in the generation.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from ops.runtime.kafka import DurableProducer, admin_client, make_consumer
from ops.view.gaps import BatchGaps, BatchLog, batch_gaps
from schemas.codec import Codec
from schemas.topics import REBUILD_RECENT, TopicCatalog
from streams.metrics import StreamMetrics
from streams.view import SceneCounter
from streams.view_loop import AGENT, Materializer, view_topics
from streams.view_store import JobViewStore

Offsets = dict[tuple[str, int], int]


class SilentProducer(DurableProducer):
    """A producer that sends nothing and counts what it was given (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__("unused:0")
        self.dropped = 0

    def produce(self, topic: str, value: bytes, *args: Any, **kwargs: Any) -> None:
        self.dropped += 1

    def flush(self, timeout: float = 30.0) -> int:
        return 0

    def close(self, timeout: float = 30.0) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Progress:
    events: int  # records consumed
    stories: int  # story documents in the generation
    behind: int  # records between the committed offsets and the target
    elapsed_s: float


class ShadowBuild:
    def __init__(
        self,
        *,
        bootstrap: str,
        catalog: TopicCatalog,
        codec: Codec,
        store: JobViewStore,
        group: str,
        count_scenes: SceneCounter,
        flush_max: int,
        flush_s: float,
        start_at: Mapping[tuple[str, int], int] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.catalog = catalog
        self.store = store
        self.group = group
        self.metrics = StreamMetrics()
        self.materializer = Materializer(
            consumer_factory=lambda: make_consumer(bootstrap, group),
            catalog=catalog,
            codec=codec,
            store=store,
            producer=SilentProducer(),
            metrics=self.metrics,
            count_scenes=count_scenes,
            flush_max=flush_max,
            flush_s=flush_s,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.materializer.run, args=(self._stop,), daemon=True)
        self._probe: Consumer = make_consumer(bootstrap, group)
        self._start_at = dict(start_at or {})
        self._started = time.monotonic()

    def start(self) -> None:
        """Start consuming from ``start_at`` where given (committed for the group first), else the start."""
        if self._start_at:
            offsets = [TopicPartition(t, p, o) for (t, p), o in self._start_at.items()]
            self._probe.commit(offsets=offsets, asynchronous=False)
        self._started = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        """Stop consuming and delete the build's consumer group (it is never resumed)."""
        self._stop.set()
        self._thread.join(60)
        self._probe.close()
        admin = admin_client(self.bootstrap)  # held: its futures resolve only while it lives
        for future in admin.delete_consumer_groups([self.group], request_timeout=10).values():
            with contextlib.suppress(Exception):  # a group left behind expires with offsets.retention
                future.result(timeout=15)

    @property
    def events(self) -> int:
        return int(
            self.metrics.registry.get_sample_value("storee_streams_events_in_total", {"agent": AGENT}) or 0
        )

    def end_offsets(self) -> Offsets:
        """Each view topic partition's log end offset, now."""
        ends: Offsets = {}
        metadata = self._probe.list_topics(timeout=10)
        for topic in view_topics(self.catalog):
            for partition in metadata.topics[topic].partitions:
                _, high = self._probe.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                ends[(topic, partition)] = high
        return ends

    def committed(self, partitions: list[tuple[str, int]], group: str | None = None) -> Offsets:
        """The committed offsets of this build's group (or ``group``); 0 where nothing is committed."""
        consumer = self._probe if group is None else make_consumer(self.bootstrap, group)
        try:
            found = consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=10)
        finally:
            if group is not None:
                consumer.close()
        return {(tp.topic, tp.partition): max(tp.offset, 0) for tp in found}

    def progress(self, target: Mapping[tuple[str, int], int]) -> Progress:
        done = self.committed([tp for tp, end in target.items() if end > 0])
        behind = sum(max(end - done.get(tp, 0), 0) for tp, end in target.items() if end > 0)
        return Progress(
            events=self.events,
            stories=self.store.stories.estimated_document_count(),
            behind=behind,
            elapsed_s=time.monotonic() - self._started,
        )

    def catch_up(
        self,
        timeout_s: float,
        on_progress: Callable[[Progress], None] = lambda _: None,
        interval_s: float = 0.3,
    ) -> Progress:
        """Wait until the generation holds every record below the log end offsets read now."""
        target = self.end_offsets()
        deadline = time.monotonic() + timeout_s
        while True:
            if not self._thread.is_alive():
                raise RuntimeError("the rebuild's materializer stopped")
            progress = self.progress(target)
            on_progress(progress)
            if progress.behind == 0:
                return progress
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the rebuild is still {progress.behind} records behind after {timeout_s:.0f}s"
                )
            time.sleep(interval_s)


def read_batch_gaps(bootstrap: str, catalog: TopicCatalog, now_ms: int) -> BatchGaps:
    """Read what :func:`ops.view.gaps.batch_gaps` decides on: the batches' log starts and how many
    submitted stories are older than the batches' (shortest) retention."""
    batches = [spec for spec in catalog if spec.rebuild == REBUILD_RECENT]
    retention = min((spec.retention_ms for spec in batches if spec.retention_ms > 0), default=-1)
    probe: Consumer = make_consumer(bootstrap, f"{catalog.prefix}view-gaps-probe")
    try:
        metadata = probe.list_topics(timeout=10)
        logs = []
        for spec in batches:
            for partition in metadata.topics[spec.name].partitions if spec.name in metadata.topics else ():
                low, high = probe.get_watermark_offsets(TopicPartition(spec.name, partition), timeout=10)
                logs.append(BatchLog(spec.name, partition, low, high))
        older = 0
        stories = catalog.stories_submitted
        if retention > 0 and stories in metadata.topics:
            cutoff = now_ms - retention
            parts = [TopicPartition(stories, p, cutoff) for p in metadata.topics[stories].partitions]
            for found in probe.offsets_for_times(parts, timeout=10):
                low, high = probe.get_watermark_offsets(TopicPartition(stories, found.partition), timeout=10)
                first_new = high if found.offset < 0 else found.offset  # -1: every record is older
                older += max(first_new - low, 0)
    finally:
        probe.close()
    return batch_gaps(logs, retention, older, now_ms)
