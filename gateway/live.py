"""Live task events for the progress streams: one fan-out per gateway process, and the resume reader.

:class:`TaskEventFanOut` is the process's one reader of ``task.events``: an assign-only consumer (no
group, no commits) in a thread, started at the end of every partition, that hands each batch of records
to the event loop. There each record advances the partition's position and, when an open stream watches
its story (the record's key), is decoded once and offered to every such stream's queue. A stream whose
queue is full is ended rather than slowed down or silently thinned: its client reconnects with
``Last-Event-ID`` and :func:`replay` gives it what it missed.

Guarantee (for one stream): every record of its story with an offset at or after the partition's
position when it subscribed is offered to it, in offset order, while it is open. Positions move only in
the event loop, at dispatch, so a subscription's ``start`` splits the partition exactly: what is before
it comes from :func:`replay` (or is in the snapshot), what is at or after it comes live.

:func:`replay` is a blocking, short-lived assign-only read of one partition from a resume point to the
partition's end, keeping the story's records: run it in a thread after subscribing, so that the end it
reads to is at or past the subscription's start.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from gateway.exceptions import InvalidRequest, ServiceUnavailable
from gateway.sse import Position, story_partition
from ops.runtime.kafka import KafkaUnavailable, assign_only_consumer, raise_for_error
from schemas.codec import Codec
from schemas.events import Event
from schemas.exceptions import CodecError

log = logging.getLogger(__name__)

BATCH = 500
CLIENT_ID = "storee-gateway-sse"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One decoded record of a watched story, with its position (the stream's event id)."""

    position: Position
    event: Event


@dataclass(eq=False)
class Subscription:
    """One open stream's place in the fan-out: its story, the partition position it started at, its
    queue (``None`` in the queue: the stream must end, its client resumes with ``Last-Event-ID``)."""

    story_id: str
    account_id: str
    partition: int
    start: int  # the first offset that comes live
    capacity: int
    queue: asyncio.Queue[Delivery | None] = field(default_factory=asyncio.Queue)
    ended: bool = False

    @property
    def seen(self) -> Position:
        """The last position before the live part (the snapshot's event id)."""
        return Position(self.partition, self.start - 1)

    def offer(self, delivery: Delivery) -> None:
        if self.ended:
            return
        if self.queue.qsize() >= self.capacity:
            self.end()
            return
        self.queue.put_nowait(delivery)

    def end(self) -> None:
        """End the stream after what it has queued (it fell behind, or the gateway is stopping)."""
        if not self.ended:
            self.ended = True
            self.queue.put_nowait(None)


class TaskEventFanOut:
    """The gateway process's one consumer of ``task.events``, dispatching by story to open streams."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        queue_size: int,
        codec: Codec | None = None,
        poll_s: float = 0.2,
        retry_s: float = 1.0,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self.topic = topic
        self._queue_size = queue_size
        self.codec = codec or Codec()
        self._poll_s = poll_s
        self._retry_s = retry_s
        self._next: dict[int, int] = {}  # partition -> next offset to dispatch (event loop only)
        self._by_story: dict[str, set[Subscription]] = defaultdict(set)
        self._per_account: Counter[str] = Counter()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- the event loop's side ------------------------------------------------------------------------

    def start(self) -> None:
        """Start reading in a thread (it waits out Kafka or the topic being absent)."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="sse-fan-out", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stopping.set()
        for subscriptions in list(self._by_story.values()):
            for subscription in subscriptions:
                subscription.end()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)

    @property
    def ready(self) -> bool:
        return bool(self._next)

    @property
    def partitions(self) -> int:
        return len(self._next)

    def partition_of(self, story_id: str) -> int:
        if not self._next:
            raise ServiceUnavailable("the live event stream is not connected to Kafka yet", retry_after=2)
        return story_partition(story_id, len(self._next))

    def open_streams(self, account_id: str) -> int:
        return self._per_account[account_id]

    def subscribe(self, story_id: str, account_id: str) -> Subscription:
        """A new stream of ``story_id``'s records from the partition's current position on."""
        partition = self.partition_of(story_id)
        subscription = Subscription(story_id, account_id, partition, self._next[partition], self._queue_size)
        self._by_story[story_id].add(subscription)
        self._per_account[account_id] += 1
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        watching = self._by_story.get(subscription.story_id)
        if watching is None or subscription not in watching:
            return
        watching.discard(subscription)
        if not watching:
            del self._by_story[subscription.story_id]
        self._per_account[subscription.account_id] -= 1
        if self._per_account[subscription.account_id] <= 0:
            del self._per_account[subscription.account_id]

    def _assigned(self, ends: dict[int, int]) -> None:
        self._next = dict(ends)
        log.info("live task events from the end topic=%s partitions=%d", self.topic, len(ends))

    def _dispatch(self, batch: list[tuple[int, int, bytes | None, bytes | None]]) -> None:
        for partition, offset, key, value in batch:
            self._next[partition] = offset + 1
            watching = self._by_story.get(key.decode("utf-8", "replace")) if key else None
            if not watching or value is None:
                continue
            try:
                event = self.codec.read(value)
            except CodecError as exc:  # the materializer dead-letters it; a stream just skips it
                log.warning("undecodable task event topic=%s partition=%d offset=%d: %s",
                            self.topic, partition, offset, exc)  # fmt: skip
                continue
            delivery = Delivery(Position(partition, offset), event)
            for subscription in watching:
                subscription.offer(delivery)

    # -- the reader thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        # What this thread has handed to the loop, so a reconnect goes on where it stopped (from the end
        # only the first time).
        positions: dict[int, int] = {}
        while not self._stopping.is_set():
            consumer: Consumer | None = None
            try:
                consumer = assign_only_consumer(self._bootstrap, CLIENT_ID)
                if not positions:
                    positions = _end_offsets(consumer, self.topic, timeout_s=2.0)
                    if not self._call(self._assigned, dict(positions)):
                        return
                consumer.assign([TopicPartition(self.topic, p, offset) for p, offset in positions.items()])
                while not self._stopping.is_set():
                    batch = []
                    # Wait for the first record only, then take what else is there without waiting:
                    # consume(n, timeout) would hold a lone record until n arrive or the timeout ends.
                    first = consumer.poll(self._poll_s)
                    messages = [] if first is None else [first, *consumer.consume(BATCH - 1, timeout=0)]
                    for message in messages:
                        error = message.error()
                        if error is None:
                            partition, offset = int(message.partition() or 0), int(message.offset() or 0)
                            batch.append((partition, offset, message.key(), message.value()))
                            positions[partition] = offset + 1
                        elif error.code() != KafkaError._PARTITION_EOF:
                            log.warning("live task events topic=%s: %s", self.topic, error.str())
                    if batch and not self._call(self._dispatch, batch):
                        return
            except (KafkaException, KafkaUnavailable) as exc:
                log.warning("live task events unavailable topic=%s, retrying: %s", self.topic, exc)
                self._stopping.wait(self._retry_s)
            finally:
                if consumer is not None:
                    consumer.close()

    def _call(self, function: object, argument: object) -> bool:
        """Run ``function(argument)`` on the event loop; False once the loop is gone."""
        assert self._loop is not None  # noqa: S101 - start() sets it before the thread exists
        try:
            self._loop.call_soon_threadsafe(function, argument)  # type: ignore[arg-type]
        except RuntimeError:  # the loop closed under us: the gateway is stopping
            return False
        return True


def _end_offsets(consumer: Consumer, topic: str, *, timeout_s: float) -> dict[int, int]:
    metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        reason = metadata.error.str() if metadata is not None and metadata.error else "no partitions"
        raise KafkaUnavailable(f"{topic}: {reason}")
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1]
        for p in sorted(metadata.partitions)
    }


def replay(
    bootstrap_servers: str,
    topic: str,
    story_id: str,
    after: Position,
    *,
    max_records: int,
    timeout_s: float,
    codec: Codec,
) -> list[Delivery]:
    """The story's records in ``after``'s partition from ``after`` (itself included, when it still is in
    the log) up to the partition's end now.

    422 when the position is past the partition's end or before its oldest record, or when more than
    ``max_records`` records would have to be read (reconnect without ``Last-Event-ID`` for a snapshot);
    503 when Kafka does not answer within ``timeout_s``.
    """
    consumer = assign_only_consumer(
        bootstrap_servers,
        f"{CLIENT_ID}-replay",
        **{"enable.partition.eof": True, "auto.offset.reset": "error"},
    )
    key = story_id.encode()
    found: list[Delivery] = []
    try:
        tp = TopicPartition(topic, after.partition)
        low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s)
        start = after.offset + 1
        if start > high or start < low:
            where = "ahead of" if start > high else "older than the oldest record of"
            raise InvalidRequest(
                f"Last-Event-ID {after} is {where} the log (offsets {low} to {high - 1}); "
                "reconnect without it for a fresh snapshot",
                field="Last-Event-ID",
            )
        if high - start > max_records:
            raise InvalidRequest(
                f"Last-Event-ID {after} is {high - start} records behind, over the replay limit of "
                f"{max_records}; reconnect without it for a fresh snapshot",
                field="Last-Event-ID",
            )
        # From the resume point itself: whether the client's last event was the story's end tells a
        # reconnect after the end (answered 204) from one that only has to wait.
        first = max(after.offset, low)
        if first >= high:
            return found
        tp.offset = first
        consumer.assign([tp])
        deadline = time.monotonic() + timeout_s
        while True:
            message = consumer.poll(0.2)
            if message is None:
                if time.monotonic() > deadline:
                    raise KafkaUnavailable(f"{topic}[{after.partition}]: no records within {timeout_s:.0f}s")
                continue
            if _is_end(message):
                return found
            raise_for_error(message)
            offset = int(message.offset() or 0)
            if message.key() == key and message.value() is not None:
                try:
                    event = codec.read(message.value())  # type: ignore[arg-type]
                except CodecError as exc:
                    log.warning("undecodable task event in replay offset=%d: %s", offset, exc)
                else:
                    found.append(Delivery(Position(after.partition, offset), event))
            if offset >= high - 1:
                return found
    except (KafkaException, KafkaUnavailable) as exc:
        reason = f"could not read the story's past events from Kafka: {exc}"
        raise ServiceUnavailable(reason, retry_after=2) from exc
    finally:
        consumer.close()


def _is_end(message: Message) -> bool:
    error = message.error()
    return error is not None and error.code() == KafkaError._PARTITION_EOF
