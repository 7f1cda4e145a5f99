"""The Faust app of ``streams/``, composed from settings by :func:`build_app` (STYLE.md, habit 3).

``storee streams`` (and ``python -m streams``) builds the settings once and calls :func:`build_app`,
which returns the app with everything it runs: the splitter and batcher agents, the batcher's timer,
the stall watchdog, and the materializer and deadline sweeper in threads of their own. Nothing is built
at import. Agents and timers are short loops that hand consumed records and ticks to the shells in
:mod:`streams.split_agent`, :mod:`streams.batch_agent` and :mod:`streams.stall_agent`; the logic lives
in pure modules (``splitting``, ``batching``, ``expiry``, ``stalls``, ``view``; see :mod:`streams`).

Faust runs in its default at-least-once mode (not exactly_once): every effect is idempotent instead.
Internal topics (the batcher's changelogs, the assignor's leader topic) are created by Faust's own
admin, so ``topic_allow_declare`` stays on; the catalog's topics must exist first (``storee streams``
ensures them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from ops.runtime.kafka import DurableProducer, make_consumer
from schemas.codec import Codec
from schemas.topics import TopicCatalog
from streams.batch_agent import Batcher
from streams.batching import BatchPolicy
from streams.metrics import StreamMetrics
from streams.outlet import KafkaOutlet
from streams.services import Loop, OutletService, ViewLoops
from streams.settings import StreamSettings
from streams.split_agent import Splitter
from streams.splitting import SplitPolicy, plan_scenes
from streams.stall_agent import StallWatchdog
from streams.sweep_loop import Sweeper
from streams.transport import App
from streams.view_loop import Materializer
from streams.view_store import JobViewStore

# Records taken from a stream at once: one table write per touched batch, not per record.
TAKE_MAX = 1000


@dataclass(frozen=True)
class StreamApp:
    """A built worker: the Faust app to run, and the parts its command and tests reach."""

    app: App
    settings: StreamSettings
    catalog: TopicCatalog
    metrics: StreamMetrics
    outlet: KafkaOutlet
    splitter: Splitter
    batcher: Batcher


def build_app(settings: StreamSettings, *, metrics: StreamMetrics | None = None) -> StreamApp:
    """The Faust app of ``settings``, with its topics, tables, agents, timers and services."""
    catalog, codec, metrics = settings.catalog, Codec(), metrics or StreamMetrics()
    # 1. The app: Faust's own, except that seeking back to committed offsets never skips records.
    app = _faust_app(settings)

    # 2. Topics and tables.
    def raw_topic(*names: str) -> Any:
        return app.topic(
            *names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    stories_topic = raw_topic(catalog.stories_submitted)
    batcher_topics = app.topic(
        catalog.tasks_requested, catalog.task_events, key_serializer="raw", value_serializer="raw"
    )
    pending_table = app.Table(
        "batcher-pending", partitions=settings.tasks_partitions, key_type=bytes, value_type=bytes
    )
    cancelled_table = app.Table(
        "batcher-cancelled", partitions=settings.tasks_partitions, key_type=bytes, value_type=bytes
    )

    # 3. The outlet. Records the agents produce go through librdkafka; Faust flushes it before committing
    # offsets. No local timeout: during an outage records wait in librdkafka's queue until Kafka is
    # back, and the flush before each commit waits with them (streams.outlet), rather than fail them.
    linger: dict[str, Any] = {"linger.ms": settings.producer_linger_s * 1000, "message.timeout.ms": 0}
    outlet = KafkaOutlet(DurableProducer(settings.bootstrap_servers, **linger))
    app.flush_hooks.append(outlet.flush)

    # 4. The shells the agents hand their records to.
    def active_task_partitions() -> set[int]:
        """Partitions of tasks.requested this worker owns now (none while rebalancing or recovering)."""
        if app.rebalancing or app.in_recovery:
            return set()
        return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == catalog.tasks_requested}

    split_policy = split_policy_of(settings)
    splitter = Splitter(policy=split_policy, catalog=catalog, codec=codec, outlet=outlet, metrics=metrics)
    batcher = Batcher(
        policy=batch_policy_of(settings),
        catalog=catalog,
        codec=codec,
        outlet=outlet,
        pending=pending_table,
        cancelled=cancelled_table,
        metrics=metrics,
        active_partitions=active_task_partitions,
    )

    # 5. Agents and timers; their names (streams.app.splitter, ...) are the ones Faust always knew.
    within = settings.tick_s / 5

    @app.agent(stories_topic, name="streams.app.splitter")
    async def splitter_agent(stream: Any) -> None:  # a faust.Stream; StreamT lacks take_events
        async for events in stream.take_events(TAKE_MAX, within=within):
            splitter.handle(event.message for event in events)

    @app.agent(batcher_topics, name="streams.app.batcher")
    async def batcher_agent(stream: Any) -> None:
        async for events in stream.take_events(TAKE_MAX, within=within):
            batcher.handle(event.message for event in events)

    @app.timer(settings.tick_s, name="streams.app.batch_timer")
    async def batch_timer() -> None:
        batcher.tick()

    sources = (catalog.stories_submitted, catalog.tasks_requested, catalog.task_events)
    watchdog = StallWatchdog(app, topics=sources, timeout_s=settings.stall_timeout_s)
    app.timer(watchdog.interval_s, name="streams.app.stall_watchdog")(watchdog.check)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode types the receiver loosely
    async def _on_revoked(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        revoked = args[0] if args else kwargs.get("revoked", set())
        batcher.forget({tp.partition for tp in revoked if tp.topic == catalog.tasks_requested})

    # 6. Services: the outlet's delivery reports, and the job view's loops in threads.
    def view_loops() -> Sequence[tuple[str, Loop]]:
        if not settings.materializer_enabled:
            return []
        client: MongoClient = MongoClient(settings.mongodb_url, serverSelectionTimeoutMS=10_000)
        database = client[settings.mongodb_database]
        store = JobViewStore(database)
        materializer = build_materializer(settings, store=store, codec=codec, metrics=metrics)
        loops: list[tuple[str, Loop]] = [("materializer", materializer.run)]
        if settings.sweep_interval_s > 0:
            sweeper = build_sweeper(settings, store=store, codec=codec, metrics=metrics)
            loops.append(("sweeper", sweeper.run))
        return loops

    app.service(OutletService(outlet))  # type: ignore[arg-type]  # Faust starts instances as they are
    app.service(ViewLoops(view_loops, app.crash))  # type: ignore[arg-type]
    return StreamApp(app, settings, catalog, metrics, outlet, splitter, batcher)


def _faust_app(settings: StreamSettings) -> App:
    # Faust creates its data directory without parents; a fresh machine has none of them yet.
    Path(settings.datadir).mkdir(parents=True, exist_ok=True)
    return App(
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
        # Without linger every record is its own produce request; a few milliseconds batch them (one
        # socket write per partition instead of one per record) for a small share of the 50 ms budget.
        producer_linger=settings.producer_linger_s,
        producer_max_batch_size=256 * 1024,
        table_standby_replicas=0,
        stream_wait_empty=True,
        datadir=settings.datadir,
    )


def split_policy_of(settings: StreamSettings) -> SplitPolicy:
    return SplitPolicy(
        max_scenes=settings.max_scenes,
        scene_max_chars=settings.scene_max_chars,
        task_ttl_ms=int(settings.task_ttl_s * 1000),
        max_task_ttl_ms=int(settings.max_task_ttl_s * 1000),
    )


def batch_policy_of(settings: StreamSettings) -> BatchPolicy:
    return BatchPolicy(
        size=settings.batch_size,
        timeout_ms=int(settings.batch_timeout_s * 1000),
        max_cost=settings.batch_max_cost,
        max_gpu_seconds=settings.batch_max_gpu_seconds,
        gpu_seconds_per_unit=settings.gpu_seconds_per_unit,
        cost_per_gpu_second=settings.cost_per_gpu_second,
    )


def build_materializer(
    settings: StreamSettings, *, store: JobViewStore, codec: Codec, metrics: StreamMetrics
) -> Materializer:
    split_policy = split_policy_of(settings)
    return Materializer(
        consumer_factory=lambda: make_consumer(settings.bootstrap_servers, settings.materializer_group),
        catalog=settings.catalog,
        codec=codec,
        store=store,
        producer=DurableProducer(settings.bootstrap_servers),
        metrics=metrics,
        count_scenes=lambda story: len(plan_scenes(story, split_policy)),
        flush_max=settings.view_flush_max,
        flush_s=settings.view_flush_s,
        cache_stories=settings.view_cache_stories,
    )


def build_sweeper(
    settings: StreamSettings, *, store: JobViewStore, codec: Codec, metrics: StreamMetrics
) -> Sweeper:
    return Sweeper(
        store=store,
        producer=DurableProducer(settings.bootstrap_servers),
        codec=codec,
        catalog=settings.catalog,
        metrics=metrics,
        interval_s=settings.sweep_interval_s,
        grace_s=settings.sweep_grace_s,
    )
