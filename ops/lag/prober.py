"""The end-to-end prober: a probe round through the running pipeline, every ``LAG_PROBE_INTERVAL_S``.

One round submits one probe story per tier (:mod:`ops.lag.probe`) with the durable producer, then
reads ``tasks.requested``, the pool's two batch topics and ``task.events`` from the round's start
(``offsets_for_times``, so nothing produced after the submission is missed) with an assign-only
consumer: it never joins a group and never commits, so no group's offsets or lag move. Only records
keyed by a probe's story id are decoded on the keyed topics; batch records are decoded to look for the
probe's task. The ``view`` stage polls the materializer's committed offset on the StoryCompleted's
partition through the admin API. A probe that has not reached every stage within
``LAG_PROBE_TIMEOUT_S`` counts as a timeout; the round then ends, it never hangs.

Metrics (in the lag exporter's registry): ``storee_probe_latency_seconds{stage,tier}`` (histogram of
the cumulative stage times, 10 ms to 5 min), ``storee_probe_timeouts_total{tier}``,
``storee_probe_last_success_timestamp_seconds{tier}``.

Cost per round, measured by ``ops/bench/bench_probe.py``: two tiny stories and their events, one
``offsets_for_times`` and a fetch of the four topics' new records, and a few committed-offset requests.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ops.lag.probe import STAGES, ProbeTarget, ProbeTrace, probe_story, reach, stage_of
from ops.runtime.kafka import DurableProducer, admin_client, assign_only_consumer
from schemas.codec import Codec
from schemas.events import StoryCompleted
from schemas.exceptions import CodecError
from schemas.ids import now_ms
from schemas.records import Tier

log = logging.getLogger(__name__)

BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
# How far before the submission the round starts reading: the brokers' and this host's clocks differ.
_CLOCK_SLACK_MS = 2_000
_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe of a round: its tier, its cumulative stage seconds, and whether it finished in time."""

    story_id: str
    tier: Tier
    seconds: dict[str, float]
    done: bool


class ProbeMetrics:
    """The probe's series in ``registry`` (the exporter's); every tier's exists from the start."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.latency = Histogram(
            "storee_probe_latency_seconds",
            "Seconds from a probe story's submission until it reached each stage (cumulative)",
            ["stage", "tier"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.timeouts = Counter(
            "storee_probe_timeouts",
            "Probes that did not reach every stage in time",
            ["tier"],
            registry=registry,
        )
        self.last_success = Gauge(
            "storee_probe_last_success_timestamp_seconds",
            "When a probe of the tier last reached every stage (Unix time)",
            ["tier"],
            registry=registry,
        )
        for tier in Tier:
            self.timeouts.labels(tier.value)
            for stage in STAGES:
                self.latency.labels(stage, tier.value)

    def record(self, result: ProbeResult) -> None:
        tier = result.tier.value
        if not result.done:
            self.timeouts.labels(tier).inc()
            return
        for stage, seconds in result.seconds.items():
            self.latency.labels(stage, tier).observe(seconds)
        self.last_success.labels(tier).set(time.time())


class Prober:
    """Runs probe rounds against ``target``; :meth:`round` is safe to call from one thread at a time."""

    def __init__(
        self,
        bootstrap_servers: str,
        target: ProbeTarget,
        *,
        timeout_s: float,
        codec: Codec | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._codec = codec or Codec()
        self._clock = clock
        self._client_id = f"storee-probe-{uuid.uuid4().hex[:8]}"
        producer_options: dict[str, Any] = {"client.id": self._client_id}
        self._producer = DurableProducer(bootstrap_servers, **producer_options)
        self._admin: AdminClient = admin_client(bootstrap_servers)
        self._consumer: Consumer = assign_only_consumer(
            bootstrap_servers, self._client_id, **{"enable.partition.eof": False}
        )
        self._rounds = 0

    def close(self) -> None:
        self._consumer.close()
        self._producer.close(5)
        self._admin = None  # type: ignore[assignment]  # freed now: see LagReader.close

    def round(
        self, tiers: tuple[Tier, ...] = tuple(Tier), stop: threading.Event | None = None
    ) -> list[ProbeResult]:
        """Submit one probe per tier and follow them until each finished or the timeout passed; a round
        ``stop`` ends early reports nothing (shutting down is no probe's timeout)."""
        self._rounds += 1
        start = self._clock()
        self._assign_from(start - _CLOCK_SLACK_MS)
        traces = [self._submit(tier, start) for tier in tiers]
        deadline = time.monotonic() + self.timeout_s
        keys = {trace.story_id.encode(): trace for trace in traces}
        batch_topics = {topic for _, topic in self.target.batches}
        while time.monotonic() < deadline and not all(t.done for t in traces):
            if stop is not None and stop.is_set():
                self._consumer.unassign()
                return []
            message = self._consumer.poll(_POLL_S)
            if message is not None and message.error() is None:
                topic = message.topic()
                trace = keys.get(message.key() or b"")
                if trace is not None or topic in batch_topics:
                    self._observe(traces if trace is None else [trace], message)
            self._check_view(traces)
        self._consumer.unassign()
        return [ProbeResult(t.story_id, t.tier, t.seconds(), t.done) for t in traces]

    def _assign_from(self, since_ms: int) -> None:
        topics = [self.target.tasks_requested, self.target.task_events]
        topics += [topic for _, topic in self.target.batches]
        metadata = self._consumer.list_topics(timeout=self.timeout_s)
        wanted = [
            TopicPartition(topic, partition, since_ms)
            for topic in topics
            for partition in sorted(metadata.topics[topic].partitions)
        ]
        self._consumer.assign(self._consumer.offsets_for_times(wanted, timeout=self.timeout_s))

    def _submit(self, tier: Tier, start: int) -> ProbeTrace:
        story = probe_story(tier, self.target.pool, self._rounds, start, int(self.timeout_s * 1000))
        message = self._producer.produce_sync(
            self.target.stories_submitted, self._codec.encode(story), key=story.story_id.encode()
        )
        _, timestamp = message.timestamp()
        return ProbeTrace(story.story_id, tier, timestamp if timestamp > 0 else start)

    def _observe(self, traces: list[ProbeTrace], message: object) -> None:
        try:
            event = self._codec.decode(message.value())  # type: ignore[attr-defined]
        except CodecError:
            return  # not the probe's record: its owner dead-letters it
        _, timestamp = message.timestamp()  # type: ignore[attr-defined]
        for trace in traces:
            stage = stage_of(trace, event)
            if stage is None:
                continue
            reach(trace, stage, timestamp)
            if isinstance(event, StoryCompleted) and trace.completed_at is None:
                trace.completed_at = (message.partition(), message.offset())  # type: ignore[attr-defined]

    def _check_view(self, traces: list[ProbeTrace]) -> None:
        waiting = [t for t in traces if t.completed_at is not None and "view" not in t.reached_ms]
        if not waiting:
            return
        partitions = [TopicPartition(self.target.task_events, t.completed_at[0]) for t in waiting]  # type: ignore[index]
        request = ConsumerGroupTopicPartitions(self.target.materializer_group, partitions)
        try:
            (future,) = self._admin.list_consumer_group_offsets([request], request_timeout=5).values()
            committed = {tp.partition: tp.offset for tp in future.result(timeout=6).topic_partitions or []}
        except (KafkaException, TimeoutError) as exc:
            log.debug("probe: materializer offsets not read: %s", exc)
            return
        observed = self._clock()
        for trace in waiting:
            partition, offset = trace.completed_at  # type: ignore[misc]
            if committed.get(partition, -1) > offset:
                reach(trace, "view", observed)


class ProbeLoop:
    """Runs a probe round every ``interval_s`` in a thread of its own and records it in ``metrics``."""

    def __init__(self, prober: Prober, metrics: ProbeMetrics, interval_s: float) -> None:
        self.prober = prober
        self.metrics = metrics
        self.interval_s = interval_s
        self.rounds = 0
        self.last: dict[Tier, ProbeResult] = {}  # the latest probe of each tier, for a look or a test
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lag-prober", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.prober.timeout_s)
        self.prober.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                for result in self.prober.round(stop=self._stop):
                    self.metrics.record(result)
                    self.last[result.tier] = result
                    if not result.done:
                        log.warning("probe timed out story_id=%s reached=%s", result.story_id, result.seconds)
            except Exception as exc:  # noqa: BLE001 - a failed round is logged; the next one tries again
                log.warning("probe round failed: %s", exc)
            self.rounds += 1
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))
