"""The materializer: every story, task, batch and task event becomes job-view documents in MongoDB.

A plain confluent-kafka consumer rather than a Faust agent: its work is blocking MongoDB I/O that would
stall Faust's event loop, it wants large consumed batches (one read and one bulk write per flush, which
is what keeps a MongoDB-wire server fed), and it commits offsets explicitly after its side effects, with
none of Faust's rebalance troubles. It runs in its own thread of the ``storee streams`` worker.

Guarantee: at least once, with idempotent effects. For each flush: decode and check the contract
(invalid task.events records go to the DLQ; other topics' are dead-lettered by their own processor, and
a contract-breaking StorySubmitted that names its story and account fails that story), reduce each
story's events into its documents (:mod:`streams.view`; order and duplicates do not matter), produce
the StoryCompleted events that became due and wait for Kafka's acknowledgement, write the documents,
then commit the offsets. A crash anywhere replays the flush into the same documents; a
StoryCompleted may be re-sent with the same event id, never lost.

One story never costs another: a story whose facts cannot be reduced or written sends its records to
the DLQ and the rest of the flush is written. Outages are waited out in place: while Kafka or MongoDB
is unreachable the same flush is retried with backoff (``storee_streams_waiting_for_dependency``), the
offsets stay uncommitted, and the worker's splitter and batcher keep running.

The end-to-end probe's stories (``ops/lag/probe.py``) are consumed and committed like any other, and
reduced by the same :func:`~streams.view.reduce_story`, but in memory only (the last
:data:`PROBE_STORIES` of them): their StoryCompleted is produced as a user's would be, and no document
of the probe is ever written, so the job view holds users' stories alone. After a restart a probe in
flight never completes; the prober counts it as a timeout. The sweeper reads the job view, so it never
sees a probe either.

A story's documents are read from MongoDB only when this materializer does not remember writing them
(:mod:`streams.view_cache`); a busy story is then written every flush but read once.

An I/O shell, named ``*_loop`` because it is a blocking consumer loop in a thread beside the Faust
app; the pure reduction it calls is in :mod:`streams.view`, its MongoDB I/O in :mod:`streams.view_store`.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Mapping, Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from pymongo.errors import ConnectionFailure

from ops.runtime.kafka import DeliveryFailed, DurableProducer, KafkaUnavailable
from schemas.codec import Codec
from schemas.contract import MAX_TIME_MS
from schemas.events import Event, StorySubmitted
from schemas.exceptions import CodecError, ContractError
from schemas.topics import TopicCatalog
from streams.dead_letters import letter_for
from streams.exceptions import UnexpectedEvent, ViewConflict
from streams.metrics import StreamMetrics
from streams.settings import VIEW_FLUSH_MAX
from streams.view import SceneCounter, StoryView, apart_probes, mark_emitted, reduce_story
from streams.view_cache import ViewCache
from streams.view_doc import StoryDoc, TaskDoc
from streams.view_facts import Fact, RejectedStory, expand, story_id_of, task_id_of
from streams.view_store import JobViewStore

log = logging.getLogger(__name__)

AGENT = "materializer"
MAX_CONFLICT_RETRIES = 5
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0
PROBE_STORIES = 256  # probe stories remembered in memory; a few rounds in flight need far fewer


def outage_cause(error: BaseException) -> str | None:
    """``"kafka"`` or ``"mongodb"`` when ``error`` means that server is unreachable, else None."""
    if isinstance(error, KafkaUnavailable | DeliveryFailed | KafkaException):
        return "kafka"
    if isinstance(error, ConnectionFailure | ViewConflict):
        return "mongodb"
    return None


def rejected_story(error: Exception) -> RejectedStory | None:
    """The failed story a contract-breaking StorySubmitted stands for, if it names story and account."""
    event = getattr(error, "event", None)
    if not isinstance(error, ContractError) or not isinstance(event, StorySubmitted) or not error.story_id:
        return None
    if error.field == "account_id":
        return None  # nobody could see the story: the DLQ record is all there is
    return RejectedStory(
        story_id=error.story_id,
        account_id=event.account_id,
        event_time=min(max(event.event_time, 0), MAX_TIME_MS),
        event_id=event.event_id[:64],
        reason=f"the submission broke the event contract: {error}"[:2000],
    )


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
        self._probes: OrderedDict[str, StoryView] = OrderedDict()

    def run(self, stop: threading.Event) -> None:
        """Consume, materialize and commit until ``stop`` is set; outages are waited out, never fatal."""
        self._wait_out(stop, "ensure_indexes", self.store.ensure_indexes)
        consumer = self.consumer_factory()
        consumer.subscribe(view_topics(self.catalog))
        log.info("materializer started topics=%s", view_topics(self.catalog))
        try:
            while not stop.is_set():
                messages = consumer.consume(num_messages=self.flush_max, timeout=self.flush_s)
                if not messages:
                    continue
                if not self._wait_out(stop, "flush", functools.partial(self.process, messages)):
                    return  # stopping mid-outage: nothing was committed, the next run replays the flush
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

    def _wait_out(self, stop: threading.Event, what: str, step: Callable[[], object]) -> bool:
        """Run ``step`` until it succeeds, backing off while Kafka or MongoDB is unavailable.

        Returns False if ``stop`` was set first. The step is a whole flush, idempotent, so running it
        again after a partial failure writes the same documents. An error that is not an outage is a
        bug the per-story isolation did not catch: it is retried too (slowly, and logged with its
        traceback) rather than crash the worker, so splitting and batching go on meanwhile.
        """
        delay = RETRY_FIRST_S
        waiting = self.metrics.waiting.labels(AGENT)
        try:
            while not stop.is_set():
                try:
                    step()
                    return True
                except Exception as exc:  # noqa: BLE001 - see the docstring
                    cause = outage_cause(exc)
                    waiting.set(1)
                    self.metrics.outage_retries.labels(AGENT, cause or "error").inc()
                    if cause is None:
                        log.exception("materializer %s failed; retrying in %.1fs", what, delay)
                    else:
                        log.warning(
                            "materializer waits for %s (%s): %s; retrying in %.1fs", cause, what, exc, delay
                        )
                    self.cache.clear()  # what landed is unknown: read the documents back
                    stop.wait(delay)
                    delay = min(delay * 2, RETRY_MAX_S)
            return False
        finally:
            waiting.set(0)

    def process(self, messages: Sequence[Message]) -> None:
        """Materialize one flush of consumed records (the part between consume and commit)."""
        facts: dict[str, list[Fact]] = defaultdict(list)
        sources: dict[str, list[Message]] = defaultdict(list)
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error topic=%s: %s", message.topic(), error.str())
                continue
            self._events_in.inc()
            try:
                event: Event = self.codec.read(message.value())  # type: ignore[arg-type]  # None: CodecError
                if not self.catalog.carries(message.topic() or "", event.schema_name):
                    # Applied, it would make a story or task nobody else will ever move on.
                    raise UnexpectedEvent(f"{type(event).__name__} does not belong on {message.topic()}")
            except (CodecError, UnexpectedEvent) as exc:
                self._bad_record(message, exc)
                rejected = rejected_story(exc)
                if rejected is not None:
                    facts[rejected.story_id].append(rejected)
                    sources[rejected.story_id].append(message)
                continue
            for fact in expand(event):
                story_id = story_id_of(fact)
                facts[story_id].append(fact)
                sources[story_id].append(message)
        users, probes = apart_probes(facts)
        self._reduce_probes(probes)
        self.materialize(users, sources)
        if self.producer.flush(30):
            raise KafkaUnavailable("dead letters were not acknowledged within 30s")

    def materialize(
        self, facts: dict[str, list[Fact]], sources: Mapping[str, Sequence[Message]] | None = None
    ) -> None:
        """Apply each story's facts to its documents and write them, again on a conflict.

        A story whose facts cannot be reduced or written (anything but an outage) is set aside: its
        records go to the DLQ with the reason and the other stories of the flush are written.
        """
        pending = dict(facts)
        for _ in range(MAX_CONFLICT_RETRIES):
            if not pending:
                return
            try:
                conflicted = self._apply(pending)
            except Exception as exc:
                if outage_cause(exc) is not None or len(pending) == 1:
                    raise
                conflicted = self._apply_one_by_one(pending, sources or {})
            pending = {story_id: pending[story_id] for story_id in conflicted}
        if pending:
            raise ViewConflict(f"stories {sorted(pending)[:5]} kept conflicting with another writer")

    def _apply_one_by_one(
        self, facts: dict[str, list[Fact]], sources: Mapping[str, Sequence[Message]]
    ) -> set[str]:
        conflicted: set[str] = set()
        for story_id, story_facts in facts.items():
            try:
                conflicted |= self._apply({story_id: story_facts})
            except Exception as exc:
                if outage_cause(exc) is not None:
                    raise
                log.exception("story_id=%s cannot be materialized; its records go to the DLQ", story_id)
                for message in sources.get(story_id, ()):
                    self._dead_letter(message, exc)
        return conflicted

    def _apply(self, facts: dict[str, list[Fact]]) -> set[str]:
        cached, missing = self.cache.take(facts)
        self.metrics.view_reads.labels("cache").inc(len(cached))
        self.metrics.view_reads.labels("store").inc(len(missing))
        task_ids = {task_id for sid in missing for fact in facts[sid] if (task_id := task_id_of(fact))}
        loaded = self.store.load(missing, task_ids)
        old: dict[str, tuple[StoryDoc | None, dict[str, TaskDoc]]] = {
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

    def _reduce_probes(self, facts: Mapping[str, list[Fact]]) -> None:
        """Reduce the probe's stories in memory and produce the StoryCompleted that became due.

        The new views are remembered only once their StoryCompleted is acknowledged, so a flush retried
        after an outage reduces and emits them again (idempotently, as for users' stories).
        """
        views: dict[str, StoryView] = {}
        for story_id, story_facts in facts.items():
            old = self._probes.get(story_id)
            try:
                views[story_id] = reduce_story(
                    story_id,
                    old.story if old is not None else None,
                    old.tasks if old is not None else {},
                    story_facts,
                    count_scenes=self.count_scenes,
                )
            except Exception:  # noqa: BLE001 - a probe's trouble must never hold users' stories up
                log.exception("probe story_id=%s cannot be reduced; the prober will time it out", story_id)
        self._emit_completed([view for view in views.values() if view.completed is not None])
        for story_id, view in views.items():
            self._probes.pop(story_id, None)
            self._probes[story_id] = view
        while len(self._probes) > PROBE_STORIES:
            self._probes.popitem(last=False)

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
            mark_emitted(view.story, event)
            log.info("story_id=%s completed status=%s", event.story_id, view.story["status"])
        if self.producer.flush(30) or failures:
            raise KafkaUnavailable(f"StoryCompleted not acknowledged: {failures[:3]}")
        self.metrics.events_out.labels(AGENT, "StoryCompleted").inc(len(views))

    def _bad_record(self, message: Message, error: Exception) -> None:
        """A record that is not a valid event: task.events' are dead-lettered here; the other topics'
        by the processor that consumes them (splitter, batcher, GPU consumers), so each bad record
        lands in the DLQ once."""
        if message.topic() == self.catalog.task_events:
            self._dead_letter(message, error)
        else:
            log.info(
                "skipping invalid record topic=%s offset=%s: %s", message.topic(), message.offset(), error
            )

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
