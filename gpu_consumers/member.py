"""One group member on one device, assembled from settings: load the pipeline, then join and consume.

Besides the tier consumers, the producer and the executor, each member gets the reader of its tier
groups' re-render requests (:mod:`gpu_consumers.rerender`), its own cancellation watcher (a
group-less consumer of ``task.events``) and, with static membership, an instance slot whose id it
joins every tier group with (:mod:`gpu_consumers.membership`).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from gpu_consumers.cancellations import CancellationWatcher
from gpu_consumers.consumer import GpuConsumer
from gpu_consumers.executor import BatchExecutor
from gpu_consumers.failures import RetryPolicy
from gpu_consumers.membership import InstanceClaim, claim_instance, instance_base
from gpu_consumers.metrics import ConsumerMetrics
from gpu_consumers.pipelines import BatchRunner, load_runner
from gpu_consumers.pools import PoolConfig
from gpu_consumers.publisher import ResultPublisher
from gpu_consumers.rerender import RerenderRequests
from gpu_consumers.scheduler import TierScheduler
from gpu_consumers.settings import GpuConsumerSettings
from gpu_consumers.work import WorkBuffer
from ops.runtime.kafka import DurableProducer, make_consumer
from ops.runtime.storage import LocalStore
from schemas.codec import Codec
from schemas.records import Tier
from schemas.topics import TopicCatalog

log = logging.getLogger(__name__)

# How long a fetch may wait at the broker for data. A partition resumed after its tier's buffered
# batch was taken joins the next fetch request only when the outstanding one returns, so this bounds
# how late a tier's next batch arrives; librdkafka's 500 ms default would leave short batches unfed.
FETCH_WAIT_MAX_MS = 50
# The cancellation watcher's fetch wait: how late a cancel is seen at most, on an idle topic.
CANCEL_FETCH_WAIT_MAX_MS = 100


def consumer_id_for(device: str, simulated: bool) -> str:
    """``host/pid/device``, marked ``+simulated`` for the benchmark backend."""
    return f"{socket.gethostname()}/{os.getpid()}/{device}" + ("+simulated" if simulated else "")


def build_member(
    settings: GpuConsumerSettings,
    pool: PoolConfig,
    runner: BatchRunner,
    *,
    metrics: ConsumerMetrics | None = None,
    consumer_id: str | None = None,
) -> tuple[GpuConsumer, DurableProducer, ConsumerMetrics]:
    """Wire a consumer for ``pool`` around an already loaded ``runner`` (it has not joined yet)."""
    catalog = TopicCatalog.build(prefix=settings.connection.topic_prefix, pools=(pool.name,))
    member_id = consumer_id or consumer_id_for(runner.device, runner.simulated)
    metrics = metrics or ConsumerMetrics(pool.name)
    client_id: dict[str, Any] = {"client.id": member_id}
    stopping = threading.Event()
    producer = DurableProducer(settings.bootstrap_servers, **client_id)
    publisher = ResultPublisher(
        producer,
        Codec(),
        task_events=catalog.task_events,
        dlq=catalog.dlq,
        metrics=metrics,
        wait=stopping.wait,
    )
    watcher = CancellationWatcher(
        make_consumer(
            settings.bootstrap_servers,
            # Never joined or committed: the watcher assigns partitions itself.
            f"{settings.connection.topic_prefix}gpu-cancellations.{pool.name}",
            **{
                "client.id": f"{member_id}/cancellations",
                "enable.partition.eof": True,
                "fetch.wait.max.ms": CANCEL_FETCH_WAIT_MAX_MS,
            },
        ),
        Codec(),
        catalog.task_events,
        lookback_s=settings.cancel_lookback_s,
        metrics=metrics,
    )
    store = LocalStore(settings.output_dir)
    groups = {tier: settings.group_id(pool.name, tier) for tier in Tier}
    executor = BatchExecutor(
        runner,
        store,
        publisher,
        metrics,
        consumer_id=member_id,
        max_batch_size=pool.max_batch_size,
        policy=RetryPolicy(settings.max_retries, settings.retry_base_s, settings.retry_max_s),
        progress_interval_s=settings.progress_interval_s,
        wait=stopping.wait,
        cancellations=watcher,
        cancel_catchup_s=settings.cancel_catchup_timeout_s,
        rerender=RerenderRequests(store, groups, refresh_s=settings.rerender_refresh_s),
    )
    instance = _claim(settings, pool, runner.device)
    kafka_consumers = {
        tier: make_consumer(
            settings.bootstrap_servers,
            settings.group_id(pool.name, tier),
            **{
                "client.id": member_id,
                "session.timeout.ms": settings.session_timeout_ms,
                "max.poll.interval.ms": settings.max_poll_interval_ms,
                "fetch.wait.max.ms": FETCH_WAIT_MAX_MS,
                **(
                    {"group.instance.id": instance.group_instance_id(pool.name, tier.value)}
                    if instance is not None
                    else {}
                ),
            },
        )
        for tier in Tier
    }
    weights = {Tier.PREMIUM: settings.premium_weight, Tier.FREE: settings.free_weight}
    consumer = GpuConsumer(
        consumers=kafka_consumers,
        executor=executor,
        buffer=WorkBuffer(TierScheduler(weights)),
        codec=Codec(),
        topics={catalog.batches(pool.name, tier): tier for tier in Tier},
        pool=pool.name,
        task_types=runner.task_types,
        consumer_id=member_id,
        poll_timeout_s=settings.poll_timeout_s,
        shutdown_grace_s=settings.shutdown_grace_s,
        ready_file=settings.ready_file,
        stop_event=stopping,
        watcher=watcher,
        instance=instance,
        leave_group_on_stop=settings.leave_group_on_stop,
    )
    return consumer, producer, metrics


def _claim(settings: GpuConsumerSettings, pool: PoolConfig, device: str) -> InstanceClaim | None:
    """This member's instance slot, or ``None`` with dynamic membership."""
    if not settings.static_membership:
        return None
    base = instance_base(socket.gethostname(), device, settings.instance_id)
    scope = f"{settings.connection.topic_prefix}{pool.name}"
    try:
        claim = claim_instance(settings.member_lock_dir, scope, base)
    except OSError as exc:
        # Without the lock no id is known to be ours alone, and a shared one fences a live member.
        log.warning(
            "cannot lock an instance slot, joining as a dynamic member dir=%s error=%s",
            settings.member_lock_dir,
            exc,
        )
        return None
    log.info("static membership instance=%s pool=%s", claim.instance_id, pool.name)
    return claim


def run_member(settings: GpuConsumerSettings, pool_name: str, device: str) -> int:
    """Load the pool's pipeline on ``device``, join the group and consume until SIGTERM or SIGINT."""
    pool = settings.pool(pool_name)
    # Warm start: the model is loaded before the member joins, so the group never waits on a load
    # and readiness (READY_FILE) means "can run a batch now".
    runner = load_runner(pool, device)
    consumer, producer, metrics = build_member(settings, pool, runner)
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, registry=metrics.registry)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal=%s consumer=%s", signal.Signals(signum).name, consumer.consumer_id)
        consumer.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    groups = ",".join(settings.group_id(pool.name, tier) for tier in Tier)
    log.info("joining groups=%s pool=%s consumer=%s", groups, pool.name, consumer.consumer_id)
    try:
        return consumer.run()
    finally:
        producer.close()
        if settings.ready_file is not None:
            Path(settings.ready_file).unlink(missing_ok=True)
