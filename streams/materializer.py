"""The materializer: every story, task, batch and task event becomes job-view documents in MongoDB.

A plain confluent-kafka consumer rather than a Faust agent: its work is blocking MongoDB I/O that would
stall Faust's event loop, it wants large consumed batches (one read and one bulk write per flush, which
is what keeps a MongoDB-wire server fed), and it commits offsets explicitly after its side effects, with
none of Faust's rebalance troubles. It runs in its own thread of the ``storee streams`` worker.

Guarantee: at least once, with idempotent effects. For each flush: decode (undecodable records go to
the DLQ), reduce each story's events into its documents (:mod:`streams.view`; order and duplicates do not
matter), produce the StoryCompleted events that became due and wait for Kafka's acknowledgement, write
the documents, then commit the offsets. A crash anywhere replays the flush into the same documents; a
StoryCompleted may be re-sent with the same event id, never lost.

A story's documents are read from MongoDB only when this materializer does not remember writing them
(:mod:`streams.view_cache`); a busy story is then written every flush but read once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from ops.kafka import DurableProducer, KafkaUnavailable
from schemas.codec import Codec
from schemas.events import Event
from schemas.exceptions import CodecError
from schemas.topics import TopicCatalog
from streams.dead_letters import letter_for
from streams.exceptions import ViewConflict
from streams.metrics import StreamMetrics
from streams.settings import VIEW_FLUSH_MAX
from streams.view import Doc, Fact, SceneCounter, StoryView, expand, reduce_story, story_id_of, task_id_of
from streams.view_cache import ViewCache
from streams.view_store import JobViewStore

log = logging.getLogger(__name__)

AGENT = "materializer"
MAX_CONFLICT_RETRIES = 5


def view_topics(catalog: TopicCatalog) -> list[str]:
    """The topics the view is built from."""
    batches = [catalog.batches(pool, tier) for pool in catalog.pools for tier in ("premium", "free")]
    return [catalog.stories_submitted, catalog.tasks_requested, *batches, catalog.task_events]


class Materializer:
    def __init__(
        self,
        *,
        consumer_factory: Callable[[], Consumer],
        catalog: TopicCatalog,
        codec: Codec,
        store: JobViewStore,
        producer: DurableProducer,
        metrics: StreamMetrics,
        count_scenes: SceneCounter,
        flush_max: int = VIEW_FLUSH_MAX,
        flush_s: float = 0.2,
        cache_stories: int = 2000,
    ) -> None:
        self.consumer_factory = consumer_factory
        self.catalog = catalog
        self.codec = codec
        self.store = store
        self.producer = producer
        self.metrics = metrics
        self.count_scenes = count_scenes
        self.flush_max = flush_max
        self.flush_s = flush_s
        self._events_in = metrics.events_in.labels(AGENT)
        self.cache = ViewCache(cache_stories)

    def run(self, stop: threading.Event) -> None:
        """Consume, materialize and commit until ``stop`` is set."""
        self.store.ensure_indexes()
        consumer = self.consumer_factory()
        consumer.subscribe(view_topics(self.catalog))
        log.info("materializer started topics=%s", view_topics(self.catalog))
        try:
            while not stop.is_set():
                messages = consumer.consume(num_messages=self.flush_max, timeout=self.flush_s)
                if not messages:
                    continue
                self.process(messages)
                offsets = _next_offsets(messages)
                if offsets:
                    try:
                        consumer.commit(offsets=offsets, asynchronous=False)
                    except Exception as exc:  # noqa: BLE001 - a lost commit only replays idempotent work
                        log.warning("commit failed (the flush will be replayed): %s", exc)
        finally:
            consumer.close()
            self.producer.close()
            log.info("materializer stopped")

    def process(self, messages: Sequence[Message]) -> None:
        """Materialize one flush of consumed records (the part between consume and commit)."""
        facts: dict[str, list[Fact]] = defaultdict(list)
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error topic=%s: %s", message.topic(), error.str())
                continue
            self._events_in.inc()
            try:
                event: Event = self.codec.decode(message.value())  # type: ignore[arg-type]  # None: CodecError
            except CodecError as exc:
                self._dead_letter(message, exc)
                continue
            for fact in expand(event):
                facts[story_id_of(fact)].append(fact)
        self.materialize(facts)
        if self.producer.flush(30):
            raise KafkaUnavailable("dead letters were not acknowledged within 30s")

    def materialize(self, facts: dict[str, list[Fact]]) -> None:
        """Apply each story's facts to its documents and write them, again on a conflict."""
        pending = dict(facts)
        for _ in range(MAX_CONFLICT_RETRIES):
            if not pending:
                return
            conflicted = self._apply(pending)
            pending = {story_id: pending[story_id] for story_id in conflicted}
        if pending:
            raise ViewConflict(f"stories {sorted(pending)[:5]} kept conflicting with another writer")

    def _apply(self, facts: dict[str, list[Fact]]) -> set[str]:
        cached, missing = self.cache.take(facts)
        self.metrics.view_reads.labels("cache").inc(len(cached))
        self.metrics.view_reads.labels("store").inc(len(missing))
        task_ids = {task_id for sid in missing for fact in facts[sid] if (task_id := task_id_of(fact))}
        loaded = self.store.load(missing, task_ids)
        old: dict[str, tuple[Doc | None, dict[str, Doc]]] = {
            story_id: (entry.story, entry.tasks) for story_id, entry in cached.items()
        }
        for story_id in missing:
            old[story_id] = (loaded.stories.get(story_id), loaded.tasks.get(story_id, {}))
        views: list[tuple[str, StoryView]] = []
        for story_id, story_facts in facts.items():
            old_story, old_tasks = old[story_id]
            view = reduce_story(story_id, old_story, old_tasks, story_facts, count_scenes=self.count_scenes)
            views.append((story_id, view))
        self._emit_completed([view for _, view in views if view.completed is not None])
        started = time.perf_counter()
        try:
            conflicts = self.store.write(
                stories=[(old[story_id][0], view.story) for story_id, view in views],
                tasks=[
                    (old[story_id][1].get(task_id), doc)
                    for story_id, view in views
                    for task_id, doc in view.tasks.items()
                ],
            )
        except BaseException:
            self.cache.evict(facts)  # what landed is unknown: read these stories back next time
            raise
        self.metrics.view_write.observe(time.perf_counter() - started)
        self.metrics.view_docs.inc(sum(1 + len(view.tasks) for _, view in views))
        self.cache.evict(conflicts)
        for story_id, view in views:
            if story_id not in conflicts:
                self.cache.put(story_id, view.story, view.tasks)
        return conflicts

    def _emit_completed(self, views: list[StoryView]) -> None:
        """Produce StoryCompleted for stories that just finished, and wait until Kafka has them all."""
        if not views:
            return
        failures: list[str] = []
        for view in views:
            event = view.completed
            if event is None:
                continue
            self.producer.produce(
                self.catalog.task_events,
                self.codec.encode(event),
                key=event.story_id.encode(),
                on_delivery=lambda err, msg: failures.append(err.str()) if err is not None else None,
            )
            view.story["_completed_emitted"] = True
            log.info("story_id=%s completed status=%s", event.story_id, view.story["status"])
        if self.producer.flush(30) or failures:
            raise KafkaUnavailable(f"StoryCompleted not acknowledged: {failures[:3]}")
        self.metrics.events_out.labels(AGENT, "StoryCompleted").inc(len(views))

    def _dead_letter(self, message: Message, error: Exception) -> None:
        record = letter_for(message, error, AGENT)
        self.producer.produce(self.catalog.dlq, record.value, key=record.key, headers=record.headers)  # type: ignore[arg-type]
        self.metrics.dlq.labels(AGENT).inc()


def _next_offsets(messages: Sequence[Message]) -> list[TopicPartition]:
    latest: dict[tuple[str, int], int] = {}
    for message in messages:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if message.error() is None and topic is not None and partition is not None and offset is not None:
            latest[(topic, partition)] = max(latest.get((topic, partition), -1), offset)
    return [TopicPartition(topic, partition, offset + 1) for (topic, partition), offset in latest.items()]
