"""The cost of one lag observation and one exporter scrape: 6 groups x 48 partitions.

Creates 6 topics of 48 partitions under a unique prefix, 20 records a partition, and 6 groups with
committed offsets (half the partitions lagging), then times over ``--rounds`` rounds:

- ``cold``: a fresh reader's first observation (every lagging partition's timestamp fetched);
- ``steady``: an observation where no offset moved (timestamps from the cache), the exporter's usual case;
- ``moving``: every group's offsets moved since the last one (every timestamp fetched again), the worst;
- ``scrape``: ``GET /metrics`` of the exporter (a snapshot in memory rendered as text).

Prints median and p90 in milliseconds; deletes its topics and groups afterwards.

    python -m ops.bench.bench_lag [--rounds 20] [--bootstrap-servers HOST:PORT]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
import uuid
from collections.abc import Callable

import httpx
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from ops.lag.exporter import LagExporter
from ops.lag.groups import WatchedGroup, WatchedTopic
from ops.lag.monitor import LagMonitor, LagSampler
from ops.lag.reader import LagReader
from ops.lag.settings import LagSettings
from ops.runtime.kafka import DurableProducer, admin_client
from ops.stack import local_bootstrap_servers

GROUPS = 6
PARTITIONS = 48
RECORDS = 20  # per partition


def _commit(admin: AdminClient, group: str, topic: str, shift: int) -> None:
    """Half the partitions caught up, half ``RECORDS // 2 - shift`` behind."""
    offsets = [
        TopicPartition(topic, p, RECORDS if p % 2 else RECORDS // 2 + shift) for p in range(PARTITIONS)
    ]
    for future in admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, offsets)]).values():
        future.result(timeout=30)


def _timed(rounds: int, run: Callable[[int], object]) -> list[float]:
    times = []
    for i in range(rounds):
        started = time.perf_counter()
        run(i)
        times.append((time.perf_counter() - started) * 1000)
    return times


def _report(name: str, times: list[float]) -> None:
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    print(f"{name:>7}: median {statistics.median(times):7.1f} ms   p90 {p90:7.1f} ms   ({len(times)} rounds)")


def run(bootstrap: str, rounds: int) -> None:
    prefix = f"bl{uuid.uuid4().hex[:8]}."
    admin = admin_client(bootstrap)
    topics = [f"{prefix}topic{i}" for i in range(GROUPS)]
    groups = [f"{prefix}group{i}" for i in range(GROUPS)]
    for future in admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics]).values():
        future.result(timeout=60)
    try:
        producer = DurableProducer(bootstrap)
        for topic in topics:
            for p in range(PARTITIONS):
                for i in range(RECORDS):
                    producer.produce(topic, f"r{i}".encode(), partition=p)
        if producer.flush(60):
            raise RuntimeError("records not delivered")
        for group, topic in zip(groups, topics, strict=True):
            _commit(admin, group, topic, 0)
        watched = [WatchedGroup(g, (WatchedTopic(t),)) for g, t in zip(groups, topics, strict=True)]
        settings = LagSettings()
        print(f"{GROUPS} groups x {PARTITIONS} partitions ({GROUPS * PARTITIONS} partitions, half lagging)")

        def cold(_: int) -> None:
            reader = LagReader(bootstrap)
            try:
                LagMonitor(reader, watched, settings).observe()
            finally:
                reader.close()

        _report("cold", _timed(rounds, cold))
        reader = LagReader(bootstrap)
        monitor = LagMonitor(reader, watched, settings)
        monitor.observe()
        _report("steady", _timed(rounds, lambda _: monitor.observe()))
        moving = []
        for i in range(rounds):
            for group, topic in zip(groups, topics, strict=True):
                _commit(admin, group, topic, (i % 9) + 1)  # outside the timing: the groups moved
            moving.extend(_timed(1, lambda _: monitor.observe()))
        _report("moving", moving)
        sampler = LagSampler(monitor, interval_s=3600)
        sampler.sample()
        exporter = LagExporter(sampler, "127.0.0.1", 0)
        exporter.start()
        with httpx.Client() as client:
            size = len(client.get(f"{exporter.url}/metrics").content)
            _report("scrape", _timed(rounds, lambda _: client.get(f"{exporter.url}/metrics")))
        print(f"scrape body: {size:,} bytes")
        exporter.stop()
        reader.close()
    finally:
        for future in admin.delete_topics(topics).values():
            with contextlib.suppress(Exception):  # cleanup must not mask the run's own result
                future.result(timeout=30)
        for future in admin.delete_consumer_groups(groups).values():
            with contextlib.suppress(Exception):
                future.result(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--bootstrap-servers", default=None, help="default: the local stack")
    args = parser.parse_args()
    run(args.bootstrap_servers or local_bootstrap_servers(), args.rounds)


if __name__ == "__main__":
    main()
