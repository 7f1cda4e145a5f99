"""The webhook intake: its own consumer group on ``task.events``, turning events into durable deliveries.

For each consumed flush: decode the records (an unreadable one is skipped here; the materializer, which
reads the same topic, dead-letters it), find each story's target in the job view (its
``callback_url``, ``webhook_events`` and account), run the pure filter and throttle of
:mod:`streams.webhook_events`, write one delivery document per webhook to send
(:mod:`streams.webhook_store`, ``_id`` = the webhook id, so a replay adds nothing), wake the sender,
and only then commit the offsets. A crash anywhere replays the flush into the same documents: a due
webhook is never lost, and never sent twice for one event.

A progress held back by the throttle lives in memory until its window closes; the committed offset of
its partition stays at or before it, so a crash replays it. The throttle's state is applied only once
the flush's documents are written, so a flush retried after an outage decides the same things again.

A story the view does not hold yet (the materializer is behind, or down) holds the flush back, retried
with backoff like any outage, for events younger than ``WEBHOOK_VIEW_WAIT``; an older event whose
story never reached the view is skipped (logged and counted). The probe's stories are never the view's
and never have webhooks. Events older than ``WEBHOOK_MAX_EVENT_AGE`` when first seen (a new group
starting at the beginning of the retained log) are recorded as ``skipped``, never sent.

A dead letter of a webhook that gave up carries the task event itself; replayed with ``storee dlq
replay`` after the receiver is fixed, it comes back here and its ``failed`` delivery starts a new round
of attempts.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from pymongo.errors import PyMongoError

from schemas.codec import Codec
from schemas.dlq import REPLAYED_FROM
from schemas.events import Event, StoryCancelled
from schemas.exceptions import CodecError
from schemas.ids import is_probe_story, now_ms
from schemas.view import WebhookStatus
from streams.exceptions import StreamsError
from streams.webhook_events import Outgoing, StoryWebhooks, delivery_id, kind_of, observe, payload, release
from streams.webhook_metrics import WebhookMetrics
from streams.webhook_schedule import RetrySchedule
from streams.webhook_store import Target, WebhookStore

log = logging.getLogger(__name__)

RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0
REMEMBERED_STORIES = 20_000  # targets and throttle states kept in memory


class WaitingForView(StreamsError):
    """Stories of the flush are not in the job view yet."""


@dataclass(frozen=True, slots=True)
class Source:
    """Where a webhook's event was read: for the commit bound and the dead letter."""

    topic: str
    partition: int
    offset: int
    value: bytes

    @classmethod
    def of(cls, message: Message) -> Source:
        return cls(
            message.topic() or "", message.partition() or 0, message.offset() or 0, message.value() or b""
        )


def delivery_doc(
    target: Target,
    item: Outgoing,
    source: Source,
    *,
    now: int,
    schedule: RetrySchedule,
    skipped: str | None = None,
) -> dict[str, Any]:
    """The delivery document for one webhook (``skipped``: the reason it will never be sent)."""
    event = item.event
    first = int(schedule.first_attempt(now / 1000) * 1000)
    return {
        "_id": delivery_id(item),
        "story_id": getattr(event, "story_id", ""),
        "account_id": target.account_id,
        "kind": item.kind.value,
        "url": target.url,
        "body": payload(item).decode("utf-8"),
        "status": (WebhookStatus.SKIPPED if skipped else WebhookStatus.PENDING).value,
        "attempts": 0,
        "next_at": None if skipped else first,
        "lease_until": 0,
        "last_status": None,
        "last_error": skipped,
        "created_at": now,
        "updated_at": now,
        "last_attempt_at": None,
        "delivered_at": None,
        "event_time": event.event_time,
        "event": source.value,
        "source": {"topic": source.topic, "partition": source.partition, "offset": source.offset},
    }


class Intake:
    def __init__(
        self,
        *,
        consumer_factory: Callable[[], Consumer],
        topic: str,
        codec: Codec,
        store: WebhookStore,
        metrics: WebhookMetrics,
        schedule: RetrySchedule,
        disabled: set[str],
        on_new: Callable[[int], None] = lambda n: None,
        progress_interval_ms: int = 500,
        max_event_age_ms: int = 24 * 3600_000,
        view_wait_ms: int = 3600_000,
        flush_max: int = 2000,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.consumer_factory = consumer_factory
        self.topic = topic
        self.codec = codec
        self.store = store
        self.metrics = metrics
        self.schedule = schedule
        self.disabled = disabled  # stories whose receiver answered 410; the sender adds to it
        self.on_new = on_new
        self.interval_ms = progress_interval_ms
        self.max_event_age_ms = max_event_age_ms
        self.view_wait_ms = view_wait_ms
        self.flush_max = flush_max
        self.clock = clock
        self._targets: OrderedDict[str, Target | None] = OrderedDict()
        self._states: OrderedDict[str, StoryWebhooks] = OrderedDict()
        self._held: dict[str, Source] = {}  # story -> where its held progress was read

    def run(self, stop: threading.Event) -> None:
        self._wait_out(stop, self.store.ensure_indexes)
        consumer = self.consumer_factory()
        consumer.subscribe([self.topic])
        log.info("webhook intake started topic=%s", self.topic)
        try:
            while not stop.is_set():
                messages = consumer.consume(num_messages=self.flush_max, timeout=0.05)
                if not self._wait_out(stop, functools.partial(self.process, messages)):
                    return
                offsets = self.commit_offsets(messages)
                if offsets:
                    try:
                        consumer.commit(offsets=offsets, asynchronous=False)
                    except Exception as exc:  # noqa: BLE001 - a lost commit replays idempotent work
                        log.warning("commit failed (the flush will be replayed): %s", exc)
        finally:
            consumer.close()
            log.info("webhook intake stopped")

    def _wait_out(self, stop: threading.Event, step: Callable[[], object]) -> bool:
        delay = RETRY_FIRST_S
        waiting = self.metrics.waiting.labels("intake")
        try:
            while not stop.is_set():
                try:
                    step()
                    return True
                except (PyMongoError, WaitingForView) as exc:
                    log.warning("webhook intake waits: %s; retrying in %.1fs", exc, delay)
                except Exception:  # noqa: BLE001 - retried slowly rather than crash-looping
                    log.exception("webhook intake failed; retrying in %.1fs", delay)
                waiting.set(1)
                self._targets.clear()  # read them again: what changed meanwhile is unknown
                stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            return False
        finally:
            waiting.set(0)

    # -- one flush -----------------------------------------------------------------------------------

    def process(self, messages: Sequence[Message]) -> None:
        """Turn one flush into delivery documents (the part between consume and commit)."""
        now = self.clock()
        read: list[tuple[str, Event, Message]] = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error: %s", error.str())
                continue
            self.metrics.events_in.inc()
            try:
                event: Event = self.codec.read(message.value())  # type: ignore[arg-type]
            except CodecError:
                continue  # the materializer dead-letters it
            story_id = getattr(event, "story_id", None)
            if not isinstance(story_id, str) or not story_id or is_probe_story(story_id):
                continue
            if kind_of(event) is None and not isinstance(event, StoryCancelled):
                continue
            read.append((story_id, event, message))
        targets = self._resolve(read, now)
        states: dict[str, StoryWebhooks] = {}
        held: dict[str, Source | None] = {}
        docs: list[dict[str, Any]] = []
        rearm: list[str] = []
        for story_id, event, message in read:
            target = targets.get(story_id)
            if target is None:
                continue
            source = Source.of(message)
            before = states.get(story_id) or self._states.get(story_id) or StoryWebhooks()
            after, out = observe(before, event, target.wanted, self.interval_ms)
            held_source = held[story_id] if story_id in held else self._held.get(story_id)
            for item in out:
                from_held = item.event is not event
                docs.append(
                    self._doc(target, item, held_source if from_held and held_source else source, now)
                )
            held[story_id] = (
                source if after.held is event else (held_source if after.held is not None else None)
            )
            states[story_id] = after
            if _replayed(message):
                kind = kind_of(event)
                if kind is not None:
                    rearm.append(delivery_id(Outgoing(kind, event, "")))
        docs.extend(self._release(now, targets, states, held))
        self._write(docs, rearm, now)
        for story_id, state in states.items():
            self._remember(self._states, story_id, state)
        for story_id, where in held.items():
            if where is None:
                self._held.pop(story_id, None)
            else:
                self._held[story_id] = where

    def _release(
        self,
        now: int,
        targets: dict[str, Target | None],
        states: dict[str, StoryWebhooks],
        held: dict[str, Source | None],
    ) -> list[dict[str, Any]]:
        """Held progress whose window closed by ``now`` (in this flush's states or remembered ones)."""
        docs: list[dict[str, Any]] = []
        for story_id in set(self._held) | {sid for sid, where in held.items() if where is not None}:
            state = states.get(story_id) or self._states.get(story_id)
            target = targets.get(story_id)
            where = held[story_id] if story_id in held else self._held.get(story_id)
            if where is None:
                continue
            if state is None or target is None:
                held[story_id] = None  # forgotten, or no longer a story of the view: nothing to hold
                continue
            after, out = release(state, now, self.interval_ms)
            if not out:
                continue
            docs.extend(self._doc(target, item, where, now) for item in out)
            states[story_id] = after
            held[story_id] = None
        return docs

    def _doc(self, target: Target, item: Outgoing, source: Source, now: int) -> dict[str, Any]:
        story_id = getattr(item.event, "story_id", "")
        skipped = None
        if target.disabled or story_id in self.disabled:
            skipped = "the receiver answered 410 Gone: no more webhooks for this story"
        elif now - item.event.event_time > self.max_event_age_ms:
            skipped = f"the event was {(now - item.event.event_time) / 3600_000:.1f} h old when first seen"
        if skipped:
            self.metrics.skipped.labels("gone" if "410" in skipped else "too_old").inc()
        return delivery_doc(target, item, source, now=now, schedule=self.schedule, skipped=skipped)

    def _write(self, docs: list[dict[str, Any]], rearm: list[str], now: int) -> None:
        added = self.store.add(docs)
        rearmed = self.store.rearm(rearm, now)
        kinds = {doc["_id"]: doc["kind"] for doc in docs}
        for delivery in added:
            self.metrics.queued.labels(kinds[delivery]).inc()
        if rearmed:
            log.info("%d failed deliveries start again (their dead letters were replayed)", rearmed)
        if added or rearmed:
            self.on_new(len(added) + rearmed)

    def _resolve(self, read: Sequence[tuple[str, Event, Message]], now: int) -> dict[str, Target | None]:
        """Each story's target; raises :class:`WaitingForView` while a recent story is not in the view."""
        wanted = {story_id for story_id, _, _ in read} | set(self._held)
        unknown = [sid for sid in wanted if sid not in self._targets]
        if unknown:
            found = self.store.targets(unknown)
            missing = [sid for sid in unknown if sid not in found]
            if missing:
                newest = {
                    sid: max((e.event_time for s, e, _ in read if s == sid), default=0) for sid in missing
                }
                waiting = [sid for sid in missing if now - newest[sid] < self.view_wait_ms]
                if waiting:
                    raise WaitingForView(
                        f"{len(waiting)} stories not in the job view yet (e.g. {waiting[0]})"
                    )
                for sid in missing:
                    log.warning("story_id=%s never reached the job view; its webhooks are skipped", sid)
                    self.metrics.skipped.labels("no_story").inc()
                    found[sid] = None
            for sid, target in found.items():
                self._remember(self._targets, sid, target)
        result = {sid: self._targets.get(sid) for sid in wanted}
        return {
            sid: _disabled(t) if t is not None and sid in self.disabled else t for sid, t in result.items()
        }

    def commit_offsets(self, messages: Sequence[Message]) -> list[TopicPartition]:
        """The next offset per partition of the flush, held back to the oldest progress still held."""
        latest: dict[int, int] = {}
        for message in messages:
            if message.error() is None and message.topic() == self.topic:
                partition, offset = message.partition() or 0, message.offset() or 0
                latest[partition] = max(latest.get(partition, -1), offset + 1)
        for source in self._held.values():
            if source.partition in latest:
                latest[source.partition] = min(latest[source.partition], source.offset)
        return [TopicPartition(self.topic, partition, offset) for partition, offset in latest.items()]

    @staticmethod
    def _remember(cache: OrderedDict[str, Any], key: str, value: Any) -> None:
        cache.pop(key, None)
        cache[key] = value
        while len(cache) > REMEMBERED_STORIES:
            cache.popitem(last=False)


def _disabled(target: Target) -> Target:
    return replace(target, disabled=True)


def _replayed(message: Message) -> bool:
    headers = message.headers() or []
    names = headers.keys() if isinstance(headers, dict) else [key for key, _ in headers]
    return REPLAYED_FROM in names
