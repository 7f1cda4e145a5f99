"""The lag reader and status on the real broker: STOP and real lag seconds, STALL, REWIND, idle OK.

Each test has its own topic and groups; windows are a second or two (through :class:`LagSettings`), so
where a window must pass, time passes, and every wait is on a condition with a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition

from ops.lag.groups import WatchedGroup, WatchedTopic
from ops.lag.monitor import LagMonitor
from ops.lag.reader import LagReader
from ops.lag.settings import LagSettings
from ops.lag.snapshot import LagSnapshot, PartitionView
from ops.lag.status import GroupStatus, PartitionStatus
from ops.runtime.kafka import DurableProducer, admin_client, make_consumer
from tests.waiting import wait_for


@pytest.fixture
def reader(kafka_bootstrap: str) -> Iterator[LagReader]:
    r = LagReader(kafka_bootstrap, timeout_s=10.0)
    yield r
    r.close()


def produce(bootstrap: str, topic: str, count: int, partition: int = 0) -> list[float]:
    """Produce ``count`` records; their timestamps as the broker stored them (seconds)."""
    producer = DurableProducer(bootstrap)
    stamps = []
    for i in range(count):
        message = producer.produce_sync(topic, f"r{i}".encode(), key=b"k")
        stamps.append(message.timestamp()[1] / 1000.0)
    producer.close()
    return stamps


def commit(bootstrap: str, group: str, topic: str, offset: int) -> None:
    """Set the group's committed offset as an operator would (the group must be inactive)."""
    admin = admin_client(bootstrap)  # held until the answer: a collected client cancels its requests
    futures = admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, offset)])]
    )
    for future in futures.values():
        future.result(timeout=30)


def partition_of(snapshot: LagSnapshot) -> PartitionView:
    (group,) = snapshot.groups
    (view,) = group.partitions
    return view


def monitor_of(reader: LagReader, group: str, topic: str, window_s: float) -> LagMonitor:
    settings = LagSettings(window_s=window_s)
    return LagMonitor(reader, (WatchedGroup(group, (WatchedTopic(topic),)),), settings)


def until(
    monitor: LagMonitor, check: Callable[[PartitionView], bool], what: str, timeout: float = 15.0
) -> PartitionView:
    def observed() -> PartitionView | None:
        view = partition_of(monitor.observe())
        return view if check(view) else None

    return wait_for(observed, timeout, what, interval=0.2)


@pytest.fixture
def member(kafka_bootstrap: str) -> Iterator[Callable[[str, str], Consumer]]:
    """Join ``group`` on ``topic`` and hold the assignment without consuming or committing."""
    consumers: list[Consumer] = []

    def join(group: str, topic: str) -> Consumer:
        consumer = make_consumer(kafka_bootstrap, group, **{"session.timeout.ms": 10_000})
        consumers.append(consumer)
        consumer.subscribe([topic])
        wait_for(
            lambda: consumer.poll(0.2) is None and consumer.assignment(), 30, f"{group} assigned {topic}"
        )
        return consumer

    yield join
    for consumer in consumers:
        consumer.close()


def test_a_group_that_stopped_consuming_shows_stop_and_its_real_lag_in_seconds(
    kafka_bootstrap: str, make_topic: Callable[..., str], topic_prefix: str, reader: LagReader
) -> None:
    topic = make_topic(f"{topic_prefix}work")
    group = f"{topic_prefix}stopped"
    produce(kafka_bootstrap, topic, 3)
    commit(kafka_bootstrap, group, topic, 3)  # caught up, then nobody consumes
    stamps = produce(kafka_bootstrap, topic, 4)
    monitor = monitor_of(reader, group, topic, window_s=1.0)
    # Right after a broker starts, its offsets partitions may still load and answer "no commit" for a
    # moment; the reading this test is about is the one with the commit in it.
    first = until(
        monitor,
        lambda v: v.verdict.status is PartitionStatus.STOP and v.reading.committed is not None,
        "STOP with the commit visible",
    )
    assert first.verdict.severity is GroupStatus.ERR
    assert (first.reading.committed, first.reading.lag, first.reading.member) == (3, 4, None)
    age = first.reading.lag_seconds
    assert age is not None and abs(age - (time.time() - stamps[0])) < 1.0  # the oldest record, not the newest
    later = until(monitor, lambda v: v.reading.at - first.reading.at >= 1.0, "a second later")
    assert later.reading.lag_seconds is not None
    grew = later.reading.lag_seconds - age
    assert abs(grew - (later.reading.at - first.reading.at)) < 1.0
    assert later.verdict.status is PartitionStatus.STOP


def test_storee_lag_exits_2_when_a_group_is_err(
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    topic_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ops.cli import main

    topic = make_topic(f"{topic_prefix}work")
    group = f"{topic_prefix}stopped"
    commit(kafka_bootstrap, group, topic, 0)
    produce(kafka_bootstrap, topic, 2)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)  # put back after the test
    monkeypatch.setenv("MONGODB_URL", "mongodb://127.0.0.1:1")
    args = ["lag", "--group", group, "--samples", "2", "--interval", "0.2"]
    assert main([*args, "--window", "3600"]) == 0  # records younger than the window: not yet STOP
    assert main([*args, "--window", "0.1"]) == 2
    out = capsys.readouterr().out
    assert "STOP" in out and "ERR" in out and group in out


def test_a_member_holding_its_offset_while_records_arrive_shows_stall(
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    topic_prefix: str,
    reader: LagReader,
    member: Callable[[str, str], Consumer],
) -> None:
    topic = make_topic(f"{topic_prefix}work")
    group = f"{topic_prefix}stalled"
    produce(kafka_bootstrap, topic, 2)
    commit(kafka_bootstrap, group, topic, 2)
    member(group, topic)
    produce(kafka_bootstrap, topic, 5)
    monitor = monitor_of(reader, group, topic, window_s=1.5)
    view = until(monitor, lambda v: v.verdict.status is PartitionStatus.STALL, "STALL")
    assert view.reading.member is not None and view.reading.committed == 2 and view.reading.lag == 5
    assert view.samples >= 2
    assert monitor.observe().groups[0].status is GroupStatus.ERR


def test_an_offset_reset_backwards_shows_rewind_as_a_replay(
    kafka_bootstrap: str, make_topic: Callable[..., str], topic_prefix: str, reader: LagReader
) -> None:
    topic = make_topic(f"{topic_prefix}work")
    group = f"{topic_prefix}replayed"
    produce(kafka_bootstrap, topic, 10)
    commit(kafka_bootstrap, group, topic, 8)
    monitor = monitor_of(reader, group, topic, window_s=30.0)
    assert partition_of(monitor.observe()).reading.committed == 8
    commit(kafka_bootstrap, group, topic, 1)  # kafka-consumer-groups --reset-offsets --to-offset 1
    view = partition_of(monitor.observe())
    assert (view.verdict.status, view.verdict.severity) == (PartitionStatus.REWIND, GroupStatus.WARN)
    assert view.reading.lag == 9
    assert view.reading.lag_seconds is not None  # the record at the new position was read (not timed out)


def test_a_caught_up_idle_group_stays_ok(
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    topic_prefix: str,
    reader: LagReader,
    member: Callable[[str, str], Consumer],
) -> None:
    topic = make_topic(f"{topic_prefix}work")
    group = f"{topic_prefix}idle"
    produce(kafka_bootstrap, topic, 4)
    commit(kafka_bootstrap, group, topic, 4)
    member(group, topic)
    monitor = monitor_of(reader, group, topic, window_s=1.0)
    started = time.monotonic()
    views = []
    while time.monotonic() - started < 2.5:  # more than two windows of nothing happening
        views.append(partition_of(monitor.observe()))
        time.sleep(0.25)
    assert {v.verdict.status for v in views} == {PartitionStatus.OK}
    assert views[-1].samples >= 2 and views[-1].reading.member is not None
    assert (views[-1].reading.lag, views[-1].reading.lag_seconds) == (0, 0.0)


def test_timestamps_are_read_once_per_offset(
    kafka_bootstrap: str, make_topic: Callable[..., str], topic_prefix: str, reader: LagReader
) -> None:
    topic = make_topic(f"{topic_prefix}work", partitions=3)
    group = f"{topic_prefix}cached"
    stamps = produce(kafka_bootstrap, topic, 3)
    monitor = monitor_of(reader, group, topic, window_s=30.0)
    first = monitor.observe().groups[0]
    lagging = [p for p in first.partitions if p.reading.lag]
    assert lagging and all(p.reading.committed is None for p in lagging)  # never committed: from the start
    assert lagging[0].reading.oldest_timestamp == pytest.approx(stamps[0], abs=0.001)
    assert reader._timestamps  # noqa: SLF001 (the cache is the point of this test)
    second = monitor.observe().groups[0]
    assert [p.reading.oldest_timestamp for p in second.partitions] == [
        p.reading.oldest_timestamp for p in first.partitions
    ]
