"""The lag model and its roll-ups on plain values: lag in records and in seconds, per topic and stage."""

from __future__ import annotations

import pytest

from ops.lag.groups import WatchedGroup, WatchedTopic, select, storee_groups
from ops.lag.model import GroupReading, Member, Observation, PartitionReading
from ops.lag.monitor import advance_windows
from ops.lag.settings import LagSettings
from ops.lag.snapshot import build_snapshot
from ops.runtime.config import Env

MEMBER = Member("worker-1", "/10.0.0.1", "m-1")


def reading(
    committed: int | None = 10,
    log_end: int = 10,
    *,
    at: float = 1000.0,
    log_start: int = 0,
    oldest: float | None = None,
    member: Member | None = MEMBER,
    topic: str = "t",
    partition: int = 0,
    group: str = "g",
) -> PartitionReading:
    return PartitionReading(group, topic, partition, at, committed, log_start, log_end, oldest, member)


def test_caught_up_has_no_lag_in_records_or_seconds() -> None:
    r = reading(committed=10, log_end=10, oldest=None)
    assert (r.lag, r.lag_seconds) == (0, 0.0)


def test_lag_seconds_is_the_age_of_the_record_at_the_committed_offset() -> None:
    r = reading(committed=4, log_end=10, at=1000.0, oldest=958.5)
    assert r.lag == 6
    assert r.lag_seconds == pytest.approx(41.5)


def test_lag_seconds_is_unknown_without_a_timestamp_and_never_negative() -> None:
    assert reading(committed=4, log_end=10, oldest=None).lag_seconds is None
    assert reading(committed=4, log_end=10, at=1000.0, oldest=1000.3).lag_seconds == 0.0  # clock skew


def test_a_group_without_a_commit_counts_from_the_log_start() -> None:
    r = reading(committed=None, log_start=3, log_end=10)
    assert (r.position, r.lag) == (3, 7)


def test_a_commit_deleted_by_retention_counts_from_the_log_start() -> None:
    r = reading(committed=2, log_start=5, log_end=10)
    assert (r.position, r.lag) == (5, 5)


def test_rollups_per_topic_group_and_stage_and_tier() -> None:
    premium = WatchedGroup("p", (WatchedTopic("batches.default.premium", "gpu:default", "premium"),))
    free = WatchedGroup("f", (WatchedTopic("batches.default.free", "gpu:default", "free"),))
    observation = Observation(
        1000.0,
        0.01,
        (
            GroupReading(
                "p",
                "stable",
                (MEMBER,),
                (
                    reading(5, 8, oldest=996.8, group="p", topic="batches.default.premium", partition=0),
                    reading(5, 5, group="p", topic="batches.default.premium", partition=1),
                ),
            ),
            GroupReading(
                "f",
                "stable",
                (MEMBER,),
                (
                    reading(1, 4, oldest=959.0, group="f", topic="batches.default.free", partition=0),
                    reading(0, 2, oldest=990.0, group="f", topic="batches.default.free", partition=1),
                ),
            ),
        ),
    )
    settings = LagSettings(warn_seconds_premium=0, warn_seconds_free=0)
    snapshot = build_snapshot(observation, advance_windows({}, observation, 60.0), (premium, free), settings)
    p, f = snapshot.groups
    assert (p.lag, p.lag_seconds, len(p.topics[0].partitions)) == (3, pytest.approx(3.2), 2)
    assert (f.lag, f.lag_seconds) == (5, pytest.approx(41.0))
    stages = {(s.stage, s.tier): (s.lag, s.wait_seconds) for s in snapshot.stages}
    assert stages == {
        ("gpu:default", "premium"): (3, pytest.approx(3.2)),
        ("gpu:default", "free"): (5, pytest.approx(41.0)),
    }
    doc = snapshot.as_dict()
    assert doc["groups"][1]["topics"][0] == {
        "topic": "batches.default.free",
        "stage": "gpu:default",
        "tier": "free",
        "partitions": 2,
        "lag": 5,
        "lag_seconds": pytest.approx(41.0),
        "status": "OK",
        "members": 1,
    }


def test_storee_groups_agree_with_the_services_settings() -> None:
    from gpu_consumers.settings import GpuConsumerSettings
    from schemas.records import Tier
    from streams.settings import StreamSettings
    from streams.webhook_settings import WebhookSettings

    environ = {
        "TOPIC_PREFIX": "x.",
        "GPU_POOLS": '{"wan": {"pipeline": "simulated"}}',
        "KAFKA_BOOTSTRAP_SERVERS": "k:9092",
        "MONGODB_URL": "mongodb://m",
    }
    streams = StreamSettings.from_env(Env(environ))
    gpu = GpuConsumerSettings.from_env(Env(environ))
    groups = {g.group: g for g in storee_groups(Env(environ))}
    webhooks = WebhookSettings.from_env(Env(environ))
    expected = {streams.app_id, streams.materializer_group, webhooks.group} | {
        gpu.group_id(pool, tier) for pool in ("default", "wan") for tier in Tier
    }
    assert set(groups) == expected
    assert groups[webhooks.group].topics == (WatchedTopic("x.task.events", "webhooks"),)
    assert [t.stage for t in groups[streams.app_id].topics] == ["splitter", "batcher"]
    assert groups["x.gpu-consumers.wan.free"].topics == (
        WatchedTopic("x.batches.wan.free", "gpu:wan", "free"),
    )


def test_select_narrows_to_named_groups_and_topics() -> None:
    known = storee_groups(Env({"TOPIC_PREFIX": "s."}))
    assert [g.group for g in select(known, ["s.streams-view"])] == ["s.streams-view"]
    other = select(known, ["someone-else"], ["their.topic"])
    assert other == (WatchedGroup("someone-else", (), frozenset({"their.topic"})),)
    batcher = select(known, [], ["s.tasks.requested"])
    # tasks.requested feeds the batcher and, like every topic the view is built from, the materializer.
    assert [(g.group, [t.stage for t in g.topics]) for g in batcher] == [
        ("s.streams", ["batcher"]),
        ("s.streams-view", ["materializer"]),
    ]


def test_the_materializer_is_watched_on_every_topic_the_view_is_built_from() -> None:
    (view,) = [g for g in storee_groups(Env({"TOPIC_PREFIX": "s."})) if g.group == "s.streams-view"]
    assert [(t.topic, t.tier) for t in view.topics] == [
        ("s.stories.submitted", "all"),
        ("s.tasks.requested", "all"),
        ("s.batches.default.premium", "premium"),
        ("s.batches.default.free", "free"),
        ("s.task.events", "all"),
    ]
