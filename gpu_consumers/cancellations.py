"""Which stories were cancelled: a per-member watcher of ``task.events`` and a bounded set of ids.

The gateway produces StoryCancelled on ``task.events``. Each member reads that topic on its own
thread with a consumer that never joins a group or commits: it assigns every partition, starting at
the first record newer than ``CANCEL_LOOKBACK_S`` (the longest a task may wait, 7 days by default),
so a restarted member knows the recent cancels too. Most records are progress and results, so only
records whose writer fingerprint (bytes 2-10) is StoryCancelled's are decoded, as in
``streams/batch_agent.py``. The executor waits (bounded) for the watcher to reach the end of every
partition once before it runs its first batch; from then on a cancel is seen within a fetch.

The set is bounded: the oldest ids go first once it holds ``capacity`` stories, and ids older than
the lookback are dropped (their tasks are past every deadline).
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import Protocol

from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, Message, TopicPartition

from gpu_consumers.delivery import is_fatal
from gpu_consumers.exceptions import KafkaClientBroken
from gpu_consumers.metrics import ConsumerMetrics
from schemas.codec import Codec
from schemas.events import StoryCancelled
from schemas.exceptions import CodecError
from schemas.ids import now_ms

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 100_000
POLL_S = 0.2
CONSUME_BATCH = 1000
RETRY_S = 5.0


class Cancellations(Protocol):
    """What the executor asks: is this story cancelled, and has the first read caught up."""

    def is_cancelled(self, story_id: str) -> bool: ...

    def wait_caught_up(self, timeout: float) -> bool: ...


class NoCancellations:
    """Nothing is ever cancelled (tests and tools that run batches without a watcher)."""

    def is_cancelled(self, story_id: str) -> bool:
        return False

    def wait_caught_up(self, timeout: float) -> bool:
        return True


class CancelledStories:
    """Story ids with the time they were cancelled, oldest first; bounded and thread-safe."""

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        max_age_ms: int | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.max_age_ms = max_age_ms
        self._clock = clock
        self._ids: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._lock = threading.Lock()

    def add(self, story_id: str, cancelled_at: int) -> bool:
        """Remember a cancel; return whether the story was new."""
        with self._lock:
            new = story_id not in self._ids
            self._ids[story_id] = cancelled_at
            self._ids.move_to_end(story_id)
            while len(self._ids) > self.capacity:
                self._ids.popitem(last=False)
            self._prune()
            return new

    def __contains__(self, story_id: object) -> bool:
        with self._lock:
            return story_id in self._ids

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)

    def _prune(self) -> None:
        if self.max_age_ms is None:
            return
        oldest = self._clock() - self.max_age_ms
        # Insertion order is roughly time order; stop at the first recent one.
        while self._ids:
            story_id, at = next(iter(self._ids.items()))
            if at >= oldest:
                return
            del self._ids[story_id]


class CancellationWatcher:
    """Reads StoryCancelled records from ``topic`` into a :class:`CancelledStories` on its own thread."""

    def __init__(
        self,
        consumer: Consumer,
        codec: Codec,
        topic: str,
        *,
        lookback_s: float,
        stories: CancelledStories | None = None,
        metrics: ConsumerMetrics | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._consumer = consumer
        self._codec = codec
        self.topic = topic
        self._lookback_ms = int(lookback_s * 1000)
        self.stories = stories or CancelledStories(max_age_ms=self._lookback_ms, clock=clock)
        self._metrics = metrics
        self._clock = clock
        self._fingerprint = codec.registry.current(StoryCancelled.schema_name).fingerprint
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._behind: set[int] = set()
        self.broken: KafkaClientBroken | None = None
        self._thread = threading.Thread(target=self._run, name=f"cancellations-{topic}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def is_cancelled(self, story_id: str) -> bool:
        return story_id in self.stories

    def wait_caught_up(self, timeout: float) -> bool:
        """Wait until every partition was read to its end once; return whether that happened in time."""
        return self._caught_up.wait(timeout)

    @property
    def caught_up(self) -> bool:
        return self._caught_up.is_set()

    def _run(self) -> None:
        try:
            while not self._stop.is_set() and not self._assign():
                self._stop.wait(RETRY_S)
            while not self._stop.is_set():
                # In batches: catching up reads every task event of the lookback, mostly progress.
                for message in self._consumer.consume(CONSUME_BATCH, POLL_S):
                    error = message.error()
                    if error is not None and is_fatal(error):
                        log.error("cancellation watcher broken topic=%s error=%s", self.topic, error.str())
                        self.broken = KafkaClientBroken(f"cancellation watcher: {error.str()}")
                        return
                    try:
                        self._on_message(message)
                    except Exception:  # noqa: BLE001 - one odd record must not blind the watcher
                        log.exception(
                            "cancellation record skipped topic=%s offset=%s", self.topic, message.offset()
                        )
        finally:
            try:
                self._consumer.close()
            except (KafkaException, RuntimeError) as exc:
                log.debug("cancellation watcher close failed error=%s", exc)

    def _assign(self) -> bool:
        """Assign every partition from the lookback start; ``False`` (retried) if Kafka did not answer."""
        try:
            metadata = self._consumer.list_topics(self.topic, timeout=10)
            topic = metadata.topics.get(self.topic)
            if topic is None or topic.error is not None or not topic.partitions:
                raise KafkaException(KafkaError._UNKNOWN_TOPIC, f"topic {self.topic} has no partitions")
            since = self._clock() - self._lookback_ms
            wanted = [TopicPartition(self.topic, p, since) for p in sorted(topic.partitions)]
            found = self._consumer.offsets_for_times(wanted, timeout=10)
        except KafkaException as exc:
            log.warning("cancellation watcher cannot start yet topic=%s error=%s", self.topic, exc)
            return False
        # -1: no record since then, so start at the end.
        starts = [
            TopicPartition(self.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END)
            for tp in found
        ]
        self._behind = {tp.partition for tp in starts}
        self._consumer.assign(starts)
        log.info(
            "cancellation watcher assigned topic=%s partitions=%d lookback_s=%d",
            self.topic,
            len(starts),
            self._lookback_ms // 1000,
        )
        return True

    def _on_message(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                self._behind.discard(message.partition() or 0)
                if not self._behind and not self._caught_up.is_set():
                    log.info(
                        "cancellation watcher caught up topic=%s cancelled=%d", self.topic, len(self.stories)
                    )
                    self._caught_up.set()
                return
            log.warning("cancellation watcher error topic=%s error=%s", self.topic, error.str())
            return
        value = message.value()
        if not isinstance(value, bytes) or value[2:10] != self._fingerprint:
            return
        try:
            event = self._codec.read(value)
        except CodecError as exc:
            # The materializer dead-letters task.events records it cannot decode; here it is only skipped.
            log.debug("undecodable StoryCancelled skipped offset=%s error=%s", message.offset(), exc)
            return
        if not isinstance(event, StoryCancelled):
            return
        if self.stories.add(event.story_id, event.event_time):
            log.info(
                "story cancelled story_id=%s partition=%s offset=%s",
                event.story_id,
                message.partition(),
                message.offset(),
            )
            if self._metrics is not None:
                self._metrics.cancellation_seen()
