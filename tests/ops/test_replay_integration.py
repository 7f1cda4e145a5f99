"""``storee replay`` on the real broker: a plan changes nothing, --execute moves the offsets, a group
with a member is refused by name, a time window starts at the first record of the window."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from ops.cli import main
from ops.replay.reader import ReplayReader
from ops.runtime.kafka import make_consumer

pytestmark = pytest.mark.integration
BASE_MS = 1_700_000_000_000


def _fill(bootstrap: str, topic: str, per_partition: int, partitions: int = 2) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for p in range(partitions):
        for i in range(per_partition):
            producer.produce(topic, value=b"x", partition=p, timestamp=BASE_MS + i * 60_000)
    assert producer.flush(30) == 0


def _commit(bootstrap: str, group: str, offsets: dict[tuple[str, int], int]) -> None:
    consumer = make_consumer(bootstrap, group)
    try:
        consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False
        )
    finally:
        consumer.close()


def _committed(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    reader = ReplayReader(bootstrap)
    try:
        return reader.committed(group)
    finally:
        reader.close()


def _replay(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    status = main(["replay", *args, "--json"])
    out = capsys.readouterr()
    return status, json.loads(out.out), out.err


@pytest.fixture
def committed_group(kafka_bootstrap, make_topic, topic_prefix):  # type: ignore[no-untyped-def]
    topic = make_topic(f"{topic_prefix}events", partitions=2)
    _fill(kafka_bootstrap, topic, 10)
    group = f"{topic_prefix}view"
    _commit(kafka_bootstrap, group, {(topic, 0): 8, (topic, 1): 10})
    return topic, group


def test_a_plan_changes_nothing_and_execute_moves_the_offsets(  # type: ignore[no-untyped-def]
    kafka_bootstrap, committed_group, capsys, tmp_path
) -> None:
    topic, group = committed_group
    common = [group, "--topic", topic, "--shift-by", "-5", "--bootstrap-servers", kafka_bootstrap]
    export = tmp_path / "plan.json"
    status, doc, _ = _replay(capsys, *common, "--export", str(export))
    assert status == 0 and not doc["executed"]
    (plan,) = doc["plans"]
    rows = {r["partition"]: r for r in plan["partitions"]}
    assert (rows[0]["new"], rows[0]["reprocess"], rows[1]["new"]) == (3, 5, 5)
    assert rows[0]["first_record_at"] == "2023-11-14T22:16:20.000Z"  # offset 3: BASE + 3 minutes
    assert plan["reprocess"] == 10
    assert _committed(kafka_bootstrap, group) == {(topic, 0): 8, (topic, 1): 10}

    status, doc, _ = _replay(capsys, group, "--from-file", str(export), "--execute",
                             "--bootstrap-servers", kafka_bootstrap)  # fmt: skip
    assert status == 0 and doc["executed"]
    assert _committed(kafka_bootstrap, group) == {(topic, 0): 3, (topic, 1): 5}
    # Again: already there, nothing to change.
    status, doc, _ = _replay(capsys, group, "--from-file", str(export), "--execute",
                             "--bootstrap-servers", kafka_bootstrap)  # fmt: skip
    assert status == 2 and not doc["executed"]


def test_a_time_window_starts_at_the_first_record_of_the_window(  # type: ignore[no-untyped-def]
    kafka_bootstrap, committed_group, capsys
) -> None:
    topic, group = committed_group
    status, doc, _ = _replay(capsys, group, "--to-datetime", "2023-11-14T22:21:00Z", "--execute",
                             "--bootstrap-servers", kafka_bootstrap)  # fmt: skip
    # BASE + 7 min = 22:20:20, + 8 min = 22:21:20: the first at or after 22:21:00 is offset 8.
    assert status == 0
    assert _committed(kafka_bootstrap, group) == {(topic, 0): 8, (topic, 1): 8}
    rows = {r["partition"]: r for r in doc["plans"][0]["partitions"]}
    assert (rows[0]["reprocess"], rows[1]["reprocess"]) == (0, 2)


def test_a_group_with_a_member_is_refused_naming_it(  # type: ignore[no-untyped-def]
    kafka_bootstrap, committed_group, capsys
) -> None:
    topic, group = committed_group
    client_id = f"replay-test-{uuid.uuid4().hex[:6]}"
    member: Consumer = make_consumer(kafka_bootstrap, group, **{"client.id": client_id})
    member.subscribe([topic])
    deadline = time.monotonic() + 30
    try:
        while not member.assignment() and time.monotonic() < deadline:
            member.poll(0.2)
        assert member.assignment(), "the member never joined"
        status, doc, err = _replay(capsys, group, "--to-earliest", "--execute",
                                   "--bootstrap-servers", kafka_bootstrap)  # fmt: skip
        assert status == 1 and not doc["executed"]
        assert client_id in err and "active member" in err
        assert doc["plans"][0]["members"][0]["client_id"] == client_id
        assert _committed(kafka_bootstrap, group) == {(topic, 0): 8, (topic, 1): 10}
    finally:
        member.close()
