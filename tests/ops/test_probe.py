"""The end-to-end probe's pure parts: its stories, where they go, and which record marks which stage."""

from __future__ import annotations

import pytest

from ops.lag.groups import storee_groups
from ops.lag.probe import STAGES, ProbeTrace, probe_story, probe_target, reach, stage_of
from ops.runtime.config import Env
from schemas.codec import Codec
from schemas.events import StoryCompleted, TaskCompleted, TaskStarted
from schemas.ids import PROBE_ACCOUNT, is_probe_story
from schemas.records import Tier
from streams.batching import make_batch
from streams.splitting import SplitPolicy, split

T0 = 1_700_000_000_000


@pytest.mark.parametrize("tier", list(Tier))
def test_a_probe_story_is_one_tiny_scene_of_the_probe_account_and_keeps_the_contract(tier: Tier) -> None:
    story = probe_story(tier, "default", 3, T0, 60_000)
    assert is_probe_story(story.story_id) and story.story_id.endswith(f"{tier.value}-{T0}-3")
    assert story.account_id == PROBE_ACCOUNT and story.tier is tier and story.model == "default"
    assert len(story.scenes) == 1 and story.params.width * story.params.height <= 64 * 64
    assert story.deadline == T0 + 60_000
    codec = Codec()
    assert codec.read(codec.encode(story)) == story  # read = decode + the contract check


def test_the_target_follows_the_deployment_and_is_none_when_a_stage_is_not_watched() -> None:
    groups = storee_groups(Env({"TOPIC_PREFIX": "t.", "GPU_POOLS": "wan"}))
    target = probe_target(groups, "wan")
    assert target is not None
    assert (target.stories_submitted, target.tasks_requested, target.task_events) == (
        "t.stories.submitted",
        "t.tasks.requested",
        "t.task.events",
    )
    assert target.materializer_group == "t.streams-view"
    assert target.batches_of(Tier.FREE) == "t.batches.wan.free"
    assert probe_target(groups, "nope") is None
    assert probe_target(groups[:1], "wan") is None


def test_each_record_of_the_probe_marks_its_stage_and_others_mark_none() -> None:
    story = probe_story(Tier.PREMIUM, "default", 1, T0, 60_000)
    trace = ProbeTrace(story.story_id, Tier.PREMIUM, T0)
    (task,) = split(story, SplitPolicy(max_scenes=8, scene_max_chars=80, task_ttl_ms=300_000), now=T0 + 5)
    batch = make_batch([task], now=T0 + 10)
    common = {"story_id": story.story_id, "task_id": task.task_id, "batch_id": batch.batch_id}
    started = TaskStarted(consumer_id="c", **common)
    done = TaskCompleted(consumer_id="c", outputs=(), run_ms=0, gpu_seconds=0.0, **common)
    completed = StoryCompleted(
        story_id=story.story_id, account_id=PROBE_ACCOUNT, tasks_completed=1, tasks_failed=0,
        tasks_expired=0, gpu_seconds=0.0,
    )  # fmt: skip
    assert [stage_of(trace, e) for e in (task, batch, started, done, completed)] == list(STAGES[:5])
    other = probe_story(Tier.FREE, "default", 1, T0, 60_000)
    assert stage_of(ProbeTrace(other.story_id, Tier.FREE, T0), batch) is None
    failed = StoryCompleted(
        story_id=story.story_id, account_id=PROBE_ACCOUNT, tasks_completed=0, tasks_failed=1,
        tasks_expired=0, gpu_seconds=0.0,
    )  # fmt: skip
    assert stage_of(trace, failed) is None  # a failed probe never completes: it times out


def test_stage_times_are_cumulative_first_seen_and_never_negative() -> None:
    trace = ProbeTrace("storee-probe-free-1-1", Tier.FREE, T0)
    for stage, at in zip(
        STAGES, (T0 + 5, T0 + 1000, T0 + 1010, T0 + 1011, T0 + 1200, T0 + 1400), strict=True
    ):
        reach(trace, stage, at)
    reach(trace, "split", T0 + 9000)  # a redelivery later changes nothing
    assert trace.done
    assert trace.seconds() == {
        "split": 0.005,
        "batch": 1.0,
        "dispatch": 1.01,
        "run": 1.011,
        "complete": 1.2,
        "view": 1.4,
    }
    early = ProbeTrace("storee-probe-free-1-2", Tier.FREE, T0)
    reach(early, "split", T0 - 3)  # the broker's clock a little behind
    assert early.seconds() == {"split": 0.0} and not early.done


def test_the_metrics_count_a_finished_probe_per_stage_and_a_late_one_as_a_timeout() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from ops.lag.prober import ProbeMetrics, ProbeResult

    registry = CollectorRegistry()
    metrics = ProbeMetrics(registry)
    seconds = dict(zip(STAGES, (0.01, 1.0, 1.1, 1.2, 1.4, 1.6), strict=True))
    metrics.record(ProbeResult("storee-probe-premium-1-1", Tier.PREMIUM, seconds, True))
    metrics.record(ProbeResult("storee-probe-free-1-1", Tier.FREE, {"split": 0.01}, False))
    value = registry.get_sample_value
    assert value("storee_probe_latency_seconds_count", {"stage": "view", "tier": "premium"}) == 1
    assert value("storee_probe_latency_seconds_sum", {"stage": "batch", "tier": "premium"}) == 1.0
    assert value("storee_probe_latency_seconds_count", {"stage": "split", "tier": "free"}) == 0
    assert value("storee_probe_timeouts_total", {"tier": "free"}) == 1
    assert value("storee_probe_timeouts_total", {"tier": "premium"}) == 0
    assert value("storee_probe_last_success_timestamp_seconds", {"tier": "premium"}) > 0
    assert b'le="0.01"' in generate_latest(registry) and b'le="300.0"' in generate_latest(registry)
