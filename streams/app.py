"""The Faust app: the one global of ``streams/`` (STYLE.md, habit 3), composed from settings at import.

``faust -A streams.app worker`` and ``storee streams`` run the same thing: the splitter and batcher
agents, the batcher's timer, and the materializer and deadline sweeper in threads of their own. Agents
are short loops that hand consumed records to the shells in :mod:`streams.splitter` and
:mod:`streams.batcher`; the logic lives in pure modules (``splitting``, ``batching``, ``expiry``, ``view``).

Faust runs in its default at-least-once mode (not exactly_once): every effect is idempotent instead.
Internal topics (the batcher's changelogs, the assignor's leader topic) are created by Faust's own
admin, so ``topic_allow_declare`` stays on; the catalog's topics must exist first (``storee streams``
ensures them).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mode
from pymongo import MongoClient
from pymongo.database import Database

from ops.runtime.kafka import DurableProducer, make_consumer
from schemas.codec import Codec
from streams.batcher import Batcher
from streams.batching import BatchPolicy
from streams.materializer import Materializer
from streams.metrics import StreamMetrics
from streams.outlet import KafkaOutlet
from streams.settings import StreamSettings
from streams.splitter import Splitter
from streams.splitting import SplitPolicy, plan_scenes
from streams.stalls import Remedy, StallWatch
from streams.sweeper import Sweeper
from streams.transport import App
from streams.view_store import JobViewStore

log = logging.getLogger(__name__)

# Records taken from a stream at once: one table write per touched batch, not per record.
TAKE_MAX = 1000

settings = StreamSettings.from_env()
catalog = settings.catalog
codec = Codec()
metrics = StreamMetrics()
# Faust creates its data directory without parents; a fresh machine has none of them yet.
Path(settings.datadir).mkdir(parents=True, exist_ok=True)

# streams.transport.App: Faust's own, except that seeking back to committed offsets never skips records.
app = App(
    settings.app_id,
    broker=f"kafka://{settings.bootstrap_servers}",
    store="memory://",
    autodiscover=False,
    web_enabled=False,
    topic_allow_declare=True,
    topic_disable_leader=False,
    topic_partitions=settings.tasks_partitions,
    consumer_auto_offset_reset="earliest",
    broker_commit_interval=1.0,
    broker_session_timeout=settings.session_timeout_s,
    broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 4),
    producer_acks=-1,
    # Without linger every record is its own produce request; a few milliseconds batch them (one socket
    # write per partition instead of one per record) for a small share of the 50 ms latency budget.
    producer_linger=settings.producer_linger_s,
    producer_max_batch_size=256 * 1024,
    table_standby_replicas=0,
    stream_wait_empty=True,
    datadir=settings.datadir,
)


def _raw_topic(name: str) -> Any:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


stories_topic = _raw_topic(catalog.stories_submitted)
batcher_topics = app.topic(
    catalog.tasks_requested, catalog.task_events, key_serializer="raw", value_serializer="raw"
)
pending_table = app.Table(
    "batcher-pending", partitions=settings.tasks_partitions, key_type=bytes, value_type=bytes
)
cancelled_table = app.Table(
    "batcher-cancelled", partitions=settings.tasks_partitions, key_type=bytes, value_type=bytes
)
# Records the agents produce go through librdkafka; Faust flushes it before committing offsets.
# No local timeout: during an outage records wait in librdkafka's queue until Kafka is back, and the
# flush before each commit waits with them (streams.outlet), rather than fail them after 5 minutes.
linger: dict[str, Any] = {"linger.ms": settings.producer_linger_s * 1000, "message.timeout.ms": 0}
outlet = KafkaOutlet(DurableProducer(settings.bootstrap_servers, **linger))
app.flush_hooks.append(outlet.flush)
split_policy = SplitPolicy(
    max_scenes=settings.max_scenes,
    scene_max_chars=settings.scene_max_chars,
    task_ttl_ms=int(settings.task_ttl_s * 1000),
    max_task_ttl_ms=int(settings.max_task_ttl_s * 1000),
)


def active_task_partitions() -> set[int]:
    """Partitions of tasks.requested this worker owns now (none while rebalancing or recovering)."""
    if app.rebalancing or app.in_recovery:
        return set()
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == catalog.tasks_requested}


splitter_shell = Splitter(policy=split_policy, catalog=catalog, codec=codec, outlet=outlet, metrics=metrics)
batcher_shell = Batcher(
    policy=BatchPolicy(
        size=settings.batch_size,
        timeout_ms=int(settings.batch_timeout_s * 1000),
        max_cost=settings.batch_max_cost,
        max_gpu_seconds=settings.batch_max_gpu_seconds,
        gpu_seconds_per_unit=settings.gpu_seconds_per_unit,
        cost_per_gpu_second=settings.cost_per_gpu_second,
    ),
    catalog=catalog,
    codec=codec,
    outlet=outlet,
    pending=pending_table,
    cancelled=cancelled_table,
    metrics=metrics,
    active_partitions=active_task_partitions,
)


@app.agent(stories_topic)
async def splitter(stream: Any) -> None:  # a faust.Stream; StreamT lacks take_events
    async for events in stream.take_events(TAKE_MAX, within=settings.tick_s / 5):
        splitter_shell.handle(event.message for event in events)


@app.agent(batcher_topics)
async def batcher(stream: Any) -> None:
    async for events in stream.take_events(TAKE_MAX, within=settings.tick_s / 5):
        batcher_shell.handle(event.message for event in events)


@app.timer(settings.tick_s)
async def batch_timer() -> None:
    batcher_shell.tick()


stall_watch: StallWatch[Any] = StallWatch(timeout_s=settings.stall_timeout_s)


class StalledPartition(RuntimeError):
    """A partition kept records waiting after being sought back to its committed offset."""


@app.timer(max(1.0, settings.stall_timeout_s / 6))
async def stall_watchdog() -> None:
    """Nudge, then restart, a worker that stopped reading a partition (see streams.stalls)."""
    if settings.stall_timeout_s <= 0:
        return
    if app.rebalancing or app.in_recovery:
        stall_watch.reset()
        return
    sources = {catalog.stories_submitted, catalog.tasks_requested, catalog.task_events}
    tps = [tp for tp in app.assignor.assigned_actives() if tp.topic in sources]
    if not tps:
        return
    consumer: Any = app.consumer
    ends = await consumer.highwaters(*tps)
    committed = {tp: consumer._committed_offset.get(tp) or 0 for tp in tps}  # Faust keeps no public copy
    offsets = {tp: (committed[tp], ends[tp]) for tp in tps if tp in ends}
    for tp, remedy in stall_watch.observe(time.monotonic(), offsets).items():
        name, waiting = f"{tp.topic}[{tp.partition}]", ends[tp] - committed[tp]
        if remedy is Remedy.RESTART:
            log.error("%s still stuck with %d records waiting: restarting the worker", name, waiting)
            await app.crash(StalledPartition(f"{name} stopped being read"))
            return
        log.warning(
            "%s has %d records waiting and has not moved for %.0fs: seeking it to its committed offset %d",
            name, waiting, settings.stall_timeout_s, committed[tp],
        )  # fmt: skip
        consumer.resume_partitions({tp})
        await consumer.seek(tp, committed[tp])


@app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode types the receiver loosely
async def _on_revoked(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
    revoked = args[0] if args else kwargs.get("revoked", set())
    batcher_shell.forget({tp.partition for tp in revoked if tp.topic == catalog.tasks_requested})


def build_materializer(database: Database) -> Materializer:
    return Materializer(
        consumer_factory=lambda: make_consumer(settings.bootstrap_servers, settings.materializer_group),
        catalog=catalog,
        codec=codec,
        store=JobViewStore(database),
        producer=DurableProducer(settings.bootstrap_servers),
        metrics=metrics,
        count_scenes=lambda story: len(plan_scenes(story, split_policy)),
        flush_max=settings.view_flush_max,
        flush_s=settings.view_flush_s,
        cache_stories=settings.view_cache_stories,
    )


def build_sweeper(database: Database) -> Sweeper:
    return Sweeper(
        store=JobViewStore(database),
        producer=DurableProducer(settings.bootstrap_servers),
        codec=codec,
        catalog=catalog,
        metrics=metrics,
        interval_s=settings.sweep_interval_s,
        grace_s=settings.sweep_grace_s,
    )


@app.service
class OutletService(mode.Service):
    """Serves the outlet's delivery reports from a thread; closing it flushes what is left."""

    async def on_start(self) -> None:
        outlet.start()

    async def on_stop(self) -> None:
        try:
            await outlet.flush(wait_out=False)
        finally:
            await asyncio.to_thread(outlet.close)


@app.service
class ViewLoops(mode.Service):
    """Runs the blocking loops over the job view (materializer, deadline sweeper) in threads of their
    own beside Faust's event loop. Each waits out outages itself; one that still dies stops the worker,
    for its supervisor to restart."""

    async def on_start(self) -> None:
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        if not settings.materializer_enabled:
            return
        client: MongoClient = MongoClient(settings.mongodb_url, serverSelectionTimeoutMS=10_000)
        database = client[settings.mongodb_database]
        loops: list[tuple[str, Callable[[threading.Event], None]]] = [
            ("materializer", build_materializer(database).run)
        ]
        if settings.sweep_interval_s > 0:
            loops.append(("sweeper", build_sweeper(database).run))
        for name, loop in loops:
            thread = threading.Thread(target=self._run, args=(name, loop), name=name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, name: str, loop: Callable[[threading.Event], None]) -> None:
        try:
            loop(self._stop)
        except Exception:
            log.exception("%s crashed; stopping the worker", name)
            self._stop.set()
            asyncio.run_coroutine_threadsafe(app.crash(RuntimeError(f"{name} crashed")), self.loop)

    async def on_stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            await asyncio.to_thread(thread.join, 30)
