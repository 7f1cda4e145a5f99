"""The Prometheus exporter: the latest :class:`LagSnapshot` as metrics, and as JSON, over HTTP.

``GET /metrics`` serves Prometheus text built by :class:`LagCollector` from the sampler's latest
snapshot; ``GET /lag.json`` serves the same snapshot as ``storee lag --json`` prints it, so both can be
compared figure for figure. A scrape reads a value in memory: the sampler observes Kafka on its own
schedule (``LAG_SAMPLE_INTERVAL_S``), so scraping every 15 s costs nothing on the brokers.

Metric names are fixed (dashboards and alert rules use them): ``kafka_consumergroup_lag``,
``kafka_consumergroup_lag_sum``, ``kafka_consumergroup_lag_seconds``, ``kafka_consumergroup_lag_seconds_max``,
``kafka_consumergroup_current_offset``, ``kafka_topic_partition_current_offset``,
``kafka_consumergroup_members``, ``storee_consumergroup_status``, ``storee_partition_status``,
``storee_stage_wait_seconds``, ``storee_stage_lag``, ``storee_lag_observation_seconds``,
``storee_lag_observation_errors_total``; with the end-to-end probe on (``LAG_PROBE_INTERVAL_S``), also
``storee_probe_latency_seconds``, ``storee_probe_timeouts_total`` and
``storee_probe_last_success_timestamp_seconds`` (:mod:`ops.lag.prober`). A lag in seconds that
cannot be known (no timestamp on the record) is left out rather than reported as 0.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from ops.lag.monitor import LagSampler
from ops.lag.snapshot import LagSnapshot
from ops.lag.status import GroupStatus, PartitionStatus

log = logging.getLogger(__name__)


class LagCollector(Collector):
    """Metrics from the sampler's latest snapshot, built at each scrape."""

    def __init__(self, sampler: LagSampler) -> None:
        self._sampler = sampler

    def collect(self) -> Iterator[Metric]:
        duration = GaugeMetricFamily(
            "storee_lag_observation_seconds", "How long the last lag observation took"
        )
        duration.add_metric([], self._sampler.last_duration_s)
        yield duration
        errors = CounterMetricFamily("storee_lag_observation_errors", "Lag observations that failed")
        errors.add_metric([], self._sampler.errors)
        yield errors
        snapshot = self._sampler.latest
        if snapshot is not None:
            yield from snapshot_metrics(snapshot)


def snapshot_metrics(snapshot: LagSnapshot) -> Iterator[Metric]:
    """Every lag metric of one snapshot."""
    part = ["consumergroup", "topic", "partition"]
    lag = GaugeMetricFamily("kafka_consumergroup_lag", "Records the group has not consumed", labels=part)
    lag_s = GaugeMetricFamily(
        "kafka_consumergroup_lag_seconds", "Age of the oldest record the group has not consumed", labels=part
    )
    current = GaugeMetricFamily(
        "kafka_consumergroup_current_offset",
        "The group's position: its committed offset, or the log start without one",
        labels=part,
    )
    log_end = GaugeMetricFamily(
        "kafka_topic_partition_current_offset", "Log end offset", labels=["topic", "partition"]
    )
    lag_sum = GaugeMetricFamily(
        "kafka_consumergroup_lag_sum",
        "Records the group has not consumed, per topic",
        labels=["consumergroup", "topic"],
    )
    lag_max = GaugeMetricFamily(
        "kafka_consumergroup_lag_seconds_max",
        "Age of the group's oldest unconsumed record, per topic",
        labels=["consumergroup", "topic"],
    )
    members = GaugeMetricFamily(
        "kafka_consumergroup_members", "Members of the group", labels=["consumergroup"]
    )
    group_status = GaugeMetricFamily(
        "storee_consumergroup_status", "1 for the group's current status", labels=["consumergroup", "status"]
    )
    partition_status = GaugeMetricFamily(
        "storee_partition_status", "1 for the partition's current status", labels=[*part, "status"]
    )
    ends: dict[tuple[str, str], int] = {}
    for group in snapshot.groups:
        members.add_metric([group.group], len(group.members))
        current_status = group.status
        for level in GroupStatus:
            group_status.add_metric([group.group, level.value], 1.0 if level == current_status else 0.0)
        for topic in group.topics:
            lag_sum.add_metric([group.group, topic.topic], topic.lag)
            if topic.lag_seconds is not None:
                lag_max.add_metric([group.group, topic.topic], topic.lag_seconds)
            for view in topic.partitions:
                r = view.reading
                labels = [group.group, r.topic, str(r.partition)]
                lag.add_metric(labels, r.lag)
                current.add_metric(labels, r.position)
                if r.lag_seconds is not None:
                    lag_s.add_metric(labels, r.lag_seconds)
                for status in PartitionStatus:
                    partition_status.add_metric(
                        [*labels, status.value], 1.0 if status == view.verdict.status else 0.0
                    )
                ends[(r.topic, str(r.partition))] = r.log_end
    for (topic_name, partition), end in sorted(ends.items()):
        log_end.add_metric([topic_name, partition], end)
    wait = GaugeMetricFamily(
        "storee_stage_wait_seconds", "Age of the oldest record waiting for a stage", labels=["stage", "tier"]
    )
    stage_lag = GaugeMetricFamily("storee_stage_lag", "Records waiting for a stage", labels=["stage", "tier"])
    for stage in snapshot.stages:
        stage_lag.add_metric([stage.stage, stage.tier], stage.lag)
        if stage.wait_seconds is not None:
            wait.add_metric([stage.stage, stage.tier], stage.wait_seconds)
    yield from (
        lag,
        lag_sum,
        lag_s,
        lag_max,
        current,
        log_end,
        members,
        group_status,
        partition_status,
        wait,
        stage_lag,
    )


def snapshot_json(snapshot: LagSnapshot | None) -> str:
    """The JSON text of ``storee lag --json`` (``null`` before the first observation)."""
    return json.dumps(None if snapshot is None else snapshot.as_dict(), indent=2)


class LagExporter:
    """An HTTP server (its own thread) for ``/metrics`` and ``/lag.json``; ``port`` 0 picks a free one."""

    def __init__(self, sampler: LagSampler, host: str = "127.0.0.1", port: int = 9308) -> None:
        self.sampler = sampler
        self.registry = CollectorRegistry()
        self.registry.register(LagCollector(sampler))
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="lag-exporter", daemon=True)
        self._thread.start()
        log.info("lag exporter listening on %s/metrics", self.url)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()


def _handler(exporter: LagExporter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server name)
            path = self.path.split("?")[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(exporter.registry))
            elif path == "/lag.json":
                self._send(200, "application/json", snapshot_json(exporter.sampler.latest).encode())
            else:
                self._send(404, "text/plain", b"not found: try /metrics or /lag.json\n")

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the http.server name)
            log.debug("lag exporter: " + format, *args)

    return Handler
