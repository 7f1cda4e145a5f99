"""The batcher's shell: TaskRequested records in, BatchReady records out on ``batches.<pool>.<tier>``.

Open batches live in a Faust table (memory store, changelog topic), one value per (partition of
tasks.requested, signature), so a restarted or rebalanced worker recovers them from the changelog.

Guarantee: every task lands in exactly one batch id, and none is lost:

* each value records the offset of the last record applied to it, so records replayed after a crash
  (Faust commits offsets every second) are skipped when the restored state already holds them;
* a closed batch first goes into the value's outbox and that value is written to the changelog; only
  when Kafka acknowledged that write is the BatchReady sent, and only when the BatchReady is
  acknowledged does it leave the outbox. A crash in between re-sends the *same* batch (same batch id
  and event id) after recovery; GPU consumers and the job view treat it as a duplicate.
* acknowledgements are written back to the changelog together: with the key's next write, or by the
  timer (one write per key per tick, not one per batch). A crash before that re-sends those batches too.

Faust's exactly_once mode is not used (DESIGN.md, "Guarantees"). StoryCancelled records on task.events
drop a story's open tasks; tasks past their deadline get TaskExpired; tasks for a pool this deployment
does not serve get TaskFailed, and their records go to the DLQ.

An I/O shell, named ``*_agent`` because an agent and a timer of the Faust app (:mod:`streams.app`)
hand it records and ticks; the pure logic it calls is in :mod:`streams.batching`, :mod:`streams.expiry`
and :mod:`streams.entries`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from typing import Any

from schemas.codec import Codec
from schemas.events import BatchReady, StoryCancelled, TaskRequested
from schemas.exceptions import CodecError, ContractError
from schemas.ids import now_ms
from schemas.topics import TopicCatalog
from streams.batching import BatchPolicy, Pending, add, confirm, drop_story, due, signature
from streams.dead_letters import letter_for
from streams.entries import decode_pending, encode_pending, entry_key, parse_key
from streams.exceptions import UnexpectedEvent, UnknownPool
from streams.expiry import expire, is_expired, task_expired
from streams.metrics import StreamMetrics
from streams.outlet import Outlet, StateTable
from streams.rejections import CONSUMER_ID, refused_task

log = logging.getLogger(__name__)

AGENT = "batcher"


class Batcher:
    def __init__(
        self,
        *,
        policy: BatchPolicy,
        catalog: TopicCatalog,
        codec: Codec,
        outlet: Outlet,
        pending: StateTable,
        cancelled: StateTable,
        metrics: StreamMetrics,
        active_partitions: Callable[[], Collection[int]],
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.policy = policy
        self.catalog = catalog
        self.codec = codec
        self.outlet = outlet
        self.pending = pending
        self.cancelled = cancelled
        self.metrics = metrics
        self.clock = clock
        self.active_partitions = active_partitions
        self._cache: dict[bytes, tuple[bytes, Pending]] = {}
        self._in_flight: set[str] = set()  # batch ids being written or sent right now
        self._last_write: dict[bytes, Any] = {}  # key -> future of its latest changelog write
        self._acked: dict[bytes, set[str]] = {}  # key -> batch ids Kafka acknowledged, not yet stored
        self._cancelled_fingerprint = codec.registry.current(StoryCancelled.schema_name).fingerprint
        self._events_in = metrics.events_in.labels(AGENT)

    # -- records -------------------------------------------------------------------------------
    def handle(self, messages: Iterable[Any]) -> None:
        """Apply consumed records (tasks.requested and task.events) and ship what they close.

        Never raises for one record: one that cannot be applied goes to the DLQ with the reason (its
        task, where it can be named, gets TaskFailed) and the others are applied; the state they changed
        is stored even if shipping something raises, since the caller acks every record it handed in.
        """
        now = self.clock()
        touched: dict[bytes, tuple[int, Pending]] = {}
        closed: list[tuple[bytes, int, BatchReady, int]] = []
        for message in messages:
            self._events_in.inc()
            try:
                if message.topic == self.catalog.task_events:
                    self._maybe_cancel(message, touched)
                else:
                    self._take(message, now, touched, closed)
            except Exception as exc:  # noqa: BLE001 - one bad record never costs another
                self._reject(message, exc)
        for key, (partition, state) in touched.items():
            self._store(key, partition, state)
        for key, partition, batch, waited in closed:
            try:
                self._ship(key, partition, batch, "size", waited)
            except Exception:  # noqa: BLE001 - it stays in the outbox; the timer re-sends it
                self._in_flight.discard(batch.batch_id)
                log.exception("shipping batch_id=%s failed; the timer re-sends it", batch.batch_id)

    def _take(
        self,
        message: Any,
        now: int,
        touched: dict[bytes, tuple[int, Pending]],
        closed: list[tuple[bytes, int, BatchReady, int]],
    ) -> None:
        task = self.codec.read(message.value)
        if not isinstance(task, TaskRequested):
            raise UnexpectedEvent(f"{type(task).__name__} on {message.topic}, expected TaskRequested")
        if task.model not in self.catalog.pools:
            unknown = UnknownPool(
                f"pool {task.model!r} is not served here; GPU_POOLS={list(self.catalog.pools)}"
            )
            self._dead_letter(message, unknown)
            self._fail(task, unknown)
            return
        if self._is_cancelled(task.story_id):
            return
        if is_expired(task, now):
            self._expire([task], now)
            return
        key = entry_key(message.partition, signature(task)).encode()
        current = touched[key][1] if key in touched else self._load_acked(key)
        opened = current.opened_at
        current, batches = add(current, task, offset=message.offset, now=now, policy=self.policy)
        touched[key] = (message.partition, current)
        for batch in batches:
            closed.append((key, message.partition, batch, now - (opened if opened is not None else now)))
            opened = None

    def _reject(self, message: Any, error: Exception) -> None:
        """Dead-letter a record that could not be applied; fail its task if the record names one."""
        if not isinstance(error, CodecError | UnexpectedEvent):
            log.exception("record could not be batched topic=%s offset=%s", message.topic, message.offset)
        try:
            self._dead_letter(message, error)
            event = getattr(error, "event", None)
            if isinstance(error, ContractError) and isinstance(event, TaskRequested) and error.task_id:
                self._fail(event, error)  # the failure's sequence and attempt are kept within the contract
        except Exception:  # noqa: BLE001 - never let the report of one failure stop the others
            log.exception("could not dead-letter topic=%s offset=%s", message.topic, message.offset)

    # -- timer ---------------------------------------------------------------------------------
    def tick(self) -> None:
        """Close timed-out batches, expire stale tasks, re-send unconfirmed batches (after recovery)."""
        now = self.clock()
        active_partitions = self.active_partitions()
        for key in list(self.pending.data.keys()):
            partition, sig = parse_key(key.decode())
            if partition not in active_partitions:
                continue  # another worker's partition (or one being recovered)
            try:
                self._tick_key(key, partition, sig, now)
            except Exception:  # noqa: BLE001 - one key's trouble never stops the others; next tick retries
                log.exception("batch timer failed for key=%s", key.decode(errors="replace"))

    def _tick_key(self, key: bytes, partition: int, sig: str, now: int) -> None:
        acked = bool(self._acked.get(key))
        state = self._load_acked(key)
        state, gone = expire(state, now)
        if gone:
            self._expire(gone, now)
        opened = state.opened_at
        state, batches = due(state, now=now, policy=self.policy)
        if gone or batches or acked:
            self._store(key, partition, state)
        for batch in batches:
            self._ship(key, partition, batch, "timeout", now - (opened or now))
        for batch in state.outbox:
            if batch.batch_id not in self._in_flight and batch not in batches:
                log.info("re-sending unconfirmed batch_id=%s partition=%s", batch.batch_id, partition)
                self._send_batch(key, partition, batch)
        self.metrics.pending.labels(sig).set(len(state.tasks))

    def forget(self, partitions: Collection[int]) -> None:
        """Drop cached state of partitions this worker no longer owns."""
        for key in [k for k in self._cache if parse_key(k.decode())[0] in partitions]:
            del self._cache[key]
            self._last_write.pop(key, None)
            self._acked.pop(key, None)

    # -- state ---------------------------------------------------------------------------------
    def _load(self, key: bytes) -> Pending:
        raw = self.pending.data.get(key)
        cached = self._cache.get(key)
        if cached is not None and cached[0] is raw:
            return cached[1]
        state = decode_pending(raw, self.codec)
        if raw is not None:
            self._cache[key] = (raw, state)
        return state

    def _load_acked(self, key: bytes) -> Pending:
        """The key's state without the batches Kafka acknowledged since it was last stored."""
        state = self._load(key)
        for batch_id in self._acked.pop(key, ()):
            state = confirm(state, batch_id)
        return state

    def _store(self, key: bytes, partition: int, state: Pending) -> None:
        raw = encode_pending(state, self.codec)
        self.pending.data[key] = raw
        self._cache[key] = (raw, state)
        self._last_write[key] = self.pending.send_changelog(partition, key, raw)

    # -- shipping ------------------------------------------------------------------------------
    def _ship(self, key: bytes, partition: int, batch: BatchReady, reason: str, waited_ms: int) -> None:
        """Send ``batch`` once the changelog write that put it in the outbox is acknowledged."""
        self._in_flight.add(batch.batch_id)
        self.metrics.batch_closed(batch.pool, batch.tier.value, len(batch.tasks), waited_ms / 1000, reason)
        written = self._last_write.get(key)
        if written is None or written.done():
            self._send_batch(key, partition, batch, written)
        else:
            written.add_done_callback(lambda future: self._send_batch(key, partition, batch, future))

    def _send_batch(self, key: bytes, partition: int, batch: BatchReady, written: Any = None) -> None:
        if written is not None and (written.cancelled() or written.exception() is not None):
            log.warning("changelog write failed for batch_id=%s; the timer retries it", batch.batch_id)
            self._in_flight.discard(batch.batch_id)
            return
        self._in_flight.add(batch.batch_id)
        topic = self.catalog.batches(batch.pool, batch.tier)
        sig = parse_key(key.decode())[1]
        try:
            sent = self.outlet.send(topic, key=sig.encode(), value=self.codec.encode(batch))
        except Exception:  # noqa: BLE001 - still in the outbox: the timer sends it again
            self._in_flight.discard(batch.batch_id)
            log.exception("sending batch_id=%s raised; the timer retries it", batch.batch_id)
            return
        sent.add_done_callback(lambda future: self._confirm(key, partition, batch, future))
        self.metrics.events_out.labels(AGENT, "BatchReady").inc()

    def _confirm(self, key: bytes, partition: int, batch: BatchReady, sent: Any) -> None:
        self._in_flight.discard(batch.batch_id)
        if sent.cancelled() or sent.exception() is not None:
            log.warning("sending batch_id=%s failed; the timer retries it", batch.batch_id)
            return
        log.debug("batch_id=%s tasks=%d delivered", batch.batch_id, len(batch.tasks))
        self._acked.setdefault(key, set()).add(batch.batch_id)  # stored with the key's next write

    # -- side events ---------------------------------------------------------------------------
    def _maybe_cancel(self, message: Any, touched: dict[bytes, tuple[int, Pending]]) -> None:
        value = message.value
        # Most task events are progress and results: skip them by fingerprint without decoding.
        if not isinstance(value, bytes) or value[2:10] != self._cancelled_fingerprint:
            return
        try:
            event = self.codec.read(value)
        except CodecError:
            return  # the materializer dead-letters task.events records it cannot decode
        if not isinstance(event, StoryCancelled):
            return
        story_key = event.story_id.encode()
        self.cancelled.data[story_key] = str(event.event_time).encode()
        self.cancelled.send_changelog(message.partition, story_key, self.cancelled.data[story_key])
        active = self.active_partitions()
        for key in list(self.pending.data.keys()):
            partition = parse_key(key.decode())[0]
            if partition not in active:
                continue
            current = touched[key][1] if key in touched else self._load(key)
            current, dropped = drop_story(current, event.story_id)
            if dropped:
                log.info("story_id=%s cancelled: dropped %d open tasks", event.story_id, len(dropped))
                touched[key] = (partition, current)

    def _is_cancelled(self, story_id: str) -> bool:
        return story_id.encode() in self.cancelled.data

    def _expire(self, tasks: list[TaskRequested], now: int) -> None:
        for task in tasks:
            event = task_expired(task, now)
            self.outlet.send(
                self.catalog.task_events, key=task.story_id.encode(), value=self.codec.encode(event)
            )
            log.info("task_id=%s expired deadline=%s", task.task_id, task.deadline)
        self.metrics.events_out.labels(AGENT, "TaskExpired").inc(len(tasks))

    def _fail(self, task: TaskRequested, error: Exception) -> None:
        event = refused_task(task, error, CONSUMER_ID)
        self.outlet.send(self.catalog.task_events, key=task.story_id.encode(), value=self.codec.encode(event))
        self.metrics.events_out.labels(AGENT, "TaskFailed").inc()

    def _dead_letter(self, message: Any, error: Exception) -> None:
        record = letter_for(message, error, AGENT)
        self.outlet.send(self.catalog.dlq, key=record.key, value=record.value, headers=record.headers)
        self.metrics.dlq.labels(AGENT).inc()
