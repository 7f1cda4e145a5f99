"""The exporter scraped over HTTP: its figures are the snapshot's, and ``storee lag --json``'s."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from ops.cli import main
from ops.lag.exporter import LagExporter
from ops.lag.groups import WatchedGroup, WatchedTopic
from ops.lag.monitor import LagMonitor, LagSampler
from ops.lag.reader import LagReader
from ops.lag.settings import LagSettings
from ops.runtime.kafka import DurableProducer, admin_client

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def lagging_group(kafka_bootstrap: str, make_topic: Callable[..., str], topic_prefix: str) -> tuple[str, str]:
    """A group 3 records into 10 on partition 0 of a 2-partition topic, nobody consuming."""
    topic = make_topic(f"{topic_prefix}work", partitions=2)
    group = f"{topic_prefix}exported"
    producer = DurableProducer(kafka_bootstrap)
    for i in range(10):
        producer.produce(topic, f"r{i}".encode(), partition=0)
    producer.produce(topic, b"other", partition=1)
    assert producer.flush(30) == 0
    admin = admin_client(kafka_bootstrap)
    offsets = [TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 1)]
    for future in admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, offsets)]).values():
        future.result(timeout=30)
    return group, topic


@pytest.fixture
def exporter(kafka_bootstrap: str, lagging_group: tuple[str, str]) -> Iterator[LagExporter]:
    group, topic = lagging_group
    reader = LagReader(kafka_bootstrap)
    watched = (WatchedGroup(group, (WatchedTopic(topic, "splitter"),)),)
    sampler = LagSampler(LagMonitor(reader, watched, LagSettings()), interval_s=3600)
    sampler.sample()  # one observation, before any scrape; no thread, so nothing changes under the test
    server = LagExporter(sampler, "127.0.0.1", 0)
    server.start()
    yield server
    server.stop()
    reader.close()


def scrape(url: str) -> Samples:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_the_scrape_carries_the_snapshots_figures(
    exporter: LagExporter, lagging_group: tuple[str, str]
) -> None:
    group, topic = lagging_group
    samples = scrape(exporter.url)
    doc = httpx.get(f"{exporter.url}/lag.json", timeout=10).json()
    (g,) = doc["groups"]
    assert value(samples, "kafka_consumergroup_members", consumergroup=group) == len(g["members"]) == 0
    for p in g["partitions"]:
        labels = {"consumergroup": group, "topic": topic, "partition": str(p["partition"])}
        assert value(samples, "kafka_consumergroup_lag", **labels) == p["lag"]
        assert value(samples, "kafka_consumergroup_current_offset", **labels) == p["committed"]
        assert value(samples, "kafka_consumergroup_lag_seconds", **labels) == pytest.approx(p["lag_seconds"])
        assert (
            value(samples, "kafka_topic_partition_current_offset", topic=topic, partition=labels["partition"])
            == (p["log_end"])
        )
        for status in ("OK", "WARN", "STALL", "STOP", "REWIND"):
            expected = 1.0 if status == p["status"] else 0.0
            assert value(samples, "storee_partition_status", **labels, status=status) == expected
    (t,) = g["topics"]
    assert value(samples, "kafka_consumergroup_lag_sum", consumergroup=group, topic=topic) == t["lag"] == 7
    assert value(
        samples, "kafka_consumergroup_lag_seconds_max", consumergroup=group, topic=topic
    ) == pytest.approx(t["lag_seconds"])
    for status in ("OK", "WARN", "ERR"):
        assert value(samples, "storee_consumergroup_status", consumergroup=group, status=status) == (
            1.0 if status == g["status"] else 0.0
        )
    (stage,) = doc["stages"]
    assert value(samples, "storee_stage_lag", stage="splitter", tier="all") == stage["lag"] == 7
    assert value(samples, "storee_stage_wait_seconds", stage="splitter", tier="all") == pytest.approx(
        stage["wait_seconds"]
    )
    assert value(samples, "storee_lag_observation_seconds") == pytest.approx(doc["observation_seconds"])
    assert value(samples, "storee_lag_observation_errors_total") == 0


def test_the_scrape_equals_storee_lag_json(
    exporter: LagExporter,
    lagging_group: tuple[str, str],
    kafka_bootstrap: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    group, topic = lagging_group
    # The CLI fills unset server variables in os.environ; set here, they are put back after the test.
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("MONGODB_URL", "mongodb://127.0.0.1:1")
    samples = scrape(exporter.url)
    status = main(
        ["lag", "--group", group, "--json", "--samples", "1", "--bootstrap-servers", kafka_bootstrap]
    )
    doc = json.loads(capsys.readouterr().out)
    assert status == 0
    (g,) = doc["groups"]
    assert [p["lag"] for p in g["partitions"]] == [7, 0]
    for p in g["partitions"]:
        labels = {"consumergroup": group, "topic": topic, "partition": str(p["partition"])}
        assert value(samples, "kafka_consumergroup_lag", **labels) == p["lag"]
        assert value(samples, "kafka_consumergroup_current_offset", **labels) == p["committed"]
        # The same record's age, read a moment later.
        assert value(samples, "kafka_consumergroup_lag_seconds", **labels) == pytest.approx(
            p["lag_seconds"], abs=2.0
        )
        assert value(samples, "storee_partition_status", **labels, status=p["status"]) == 1.0
    assert value(samples, "storee_consumergroup_status", consumergroup=group, status=g["status"]) == 1.0


def test_unknown_paths_are_404(exporter: LagExporter) -> None:
    assert httpx.get(f"{exporter.url}/", timeout=10).status_code == 404
