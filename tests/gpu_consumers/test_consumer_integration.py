"""The GPU consumer against the real broker, with the tiny Wan pipeline on the CPU."""

from __future__ import annotations

import math
import signal
from collections import Counter
from pathlib import Path

import imageio.v3 as iio
import pytest
from confluent_kafka.admin import AdminClient

from ops.runtime.storage import LocalStore
from schemas.contract import MAX_STEPS
from schemas.events import TaskCompleted, TaskProgress, TaskStarted
from schemas.topics import TopicCatalog
from tests.gpu_consumers.helpers import (
    POOL,
    ConsumerProcesses,
    EventReader,
    committed,
    group_members,
    make_batch,
    publish,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CALIBRATION_STEPS = 60
MAX_LONG_STEPS = MAX_STEPS  # the contract's own cap; 3,000 fell short on a fast CI machine (2.2 ms a step)

PROMPTS = [
    "a red fox runs through fresh snow at dawn",
    "a cat sleeps on a warm windowsill",
    "waves roll onto a sandy beach at sunset",
]


def assert_playable(store: LocalStore, completion: TaskCompleted, frames: int, size: int) -> None:
    (artifact,) = completion.outputs
    assert artifact.media_type == "video/mp4"
    video = iio.imread(store.local_path(artifact.uri))
    assert video.shape == (frames, size, size, 3), video.shape
    assert artifact.size_bytes == store.local_path(artifact.uri).stat().st_size


def test_three_prompts_become_three_playable_videos(
    consumers: ConsumerProcesses, catalog: TopicCatalog, kafka_bootstrap: str
) -> None:
    proc = consumers.start()
    consumers.wait_ready(proc)
    batch = make_batch(PROMPTS)
    partition, offset = publish(kafka_bootstrap, catalog, batch)
    reader = EventReader(kafka_bootstrap, catalog.task_events, 3)
    try:
        reader.wait(lambda r: len(r.of(TaskCompleted)) >= 3, 120, "three TaskCompleted events")
        completions = reader.of(TaskCompleted)
        assert sorted(c.task_id for c in completions) == sorted(t.task_id for t in batch.tasks)
        assert {c.batch_id for c in completions} == {batch.batch_id}
        assert {c.seed for c in completions} == {1000, 1001, 1002}
        assert len(reader.of(TaskStarted)) == 3
        assert {p.total_steps for p in reader.of(TaskProgress)} == {2}
        store = LocalStore(consumers.output_dir)
        for completion in completions:
            assert_playable(store, completion, frames=5, size=32)
            expected = consumers.output_dir / "outputs" / completion.story_id / f"{completion.task_id}.mp4"
            assert store.local_path(completion.outputs[0].uri) == expected.resolve()
        # The offset is committed only after the results were acknowledged.
        wait_for(
            lambda: (
                committed(kafka_bootstrap, consumers.group, catalog.batches(POOL, "premium"), partition)
                == offset + 1
            ),
            30,
            "the batch's offset to be committed",
        )
    finally:
        reader.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, consumers.log(proc)


def test_batch_of_a_killed_consumer_is_redone_by_another_member(
    consumers: ConsumerProcesses, catalog: TopicCatalog, kafka_bootstrap: str, admin: AdminClient
) -> None:
    first, second = consumers.start(), consumers.start()
    consumers.wait_ready(first)
    consumers.wait_ready(second)
    wait_for(lambda: len(group_members(admin, consumers.group)) == 2, 60, "a stable group of two")
    # Enough denoising steps that the batch is still running when its start is observed.
    batch = make_batch(PROMPTS, num_inference_steps=150)
    partition, offset = publish(kafka_bootstrap, catalog, batch)
    reader = EventReader(kafka_bootstrap, catalog.task_events, 3)
    try:
        reader.wait(lambda r: bool(r.of(TaskStarted)), 60, "the batch to start")
        victim_id = reader.of(TaskStarted)[0].consumer_id
        victim = next(p for p in (first, second) if f"/{p.pid}/" in victim_id)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)

        expected = {task.task_id for task in batch.tasks}
        reader.wait(
            lambda r: {c.task_id for c in r.of(TaskCompleted)} >= expected, 180, "every task to complete"
        )
        completions = reader.of(TaskCompleted)
        # The killed member finished nothing; the survivor redid the whole batch.
        assert all(c.consumer_id != victim_id for c in completions)
        # What the job view will show: completions de-duplicated by task id, one per task.
        # TODO(issue 5): also assert on the materialized job view once streams/ writes it.
        per_task = Counter(c.task_id for c in completions)
        assert set(per_task) == expected
        assert {c.task_id: c for c in completions}.keys() == expected
        store = LocalStore(consumers.output_dir)
        for completion in completions:
            assert_playable(store, completion, frames=5, size=32)
        # Next to each clip its manifest (written just after the clip, while the member goes on).
        manifests = [store.local_path(c.outputs[0].uri).with_suffix(".json") for c in completions]
        wait_for(lambda: all(m.is_file() for m in manifests), 30, "every clip's manifest")
        # No half-written file is left behind by the killed member (writes go to a temp name first).
        leftovers = [
            p
            for p in Path(consumers.output_dir).rglob("*")
            if p.is_file() and not p.name.endswith((".mp4", ".json"))
        ]
        assert leftovers == []
        wait_for(
            lambda: (
                committed(kafka_bootstrap, consumers.group, catalog.batches(POOL, "premium"), partition)
                == offset + 1
            ),
            30,
            "the survivor to commit the batch",
        )
    finally:
        reader.close()


def test_batch_longer_than_max_poll_interval_keeps_membership(
    consumers: ConsumerProcesses, catalog: TopicCatalog, kafka_bootstrap: str, admin: AdminClient
) -> None:
    max_poll_ms = 7000
    proc = consumers.start(KAFKA_MAX_POLL_INTERVAL_MS=str(max_poll_ms))
    consumers.wait_ready(proc)
    members = wait_for(lambda: group_members(admin, consumers.group), 60, "a stable group")
    size = {"width": 64, "height": 64, "num_frames": 17}
    reader = EventReader(kafka_bootstrap, catalog.task_events, 3)
    try:
        # CPU speed on a shared machine varies several-fold: time a short batch first, then size the
        # long one to run about 6 times the poll interval (2.5 and 4 times were seen to fall short: the
        # calibration run carries the first call's warm-up, so it overstates the time per step).
        publish(
            kafka_bootstrap, catalog, make_batch(PROMPTS[:1], num_inference_steps=CALIBRATION_STEPS, **size)
        )
        reader.wait(lambda r: bool(r.of(TaskCompleted)), 120, "the calibration batch to complete")
        per_step_ms = reader.of(TaskCompleted)[0].run_ms / CALIBRATION_STEPS
        steps = min(MAX_LONG_STEPS, math.ceil(6 * max_poll_ms / per_step_ms))
        batch = make_batch(PROMPTS[:1], num_inference_steps=steps, **size)
        partition, offset = publish(kafka_bootstrap, catalog, batch)
        reader.wait(lambda r: len(r.of(TaskCompleted)) == 2, 240, "the long batch to complete")
        completions = [c for c in reader.of(TaskCompleted) if c.batch_id == batch.batch_id]
        (completion,) = completions
        assert completion.run_ms > max_poll_ms, (
            f"batch ran {completion.run_ms} ms, not longer than the interval"
        )
        wait_for(
            lambda: (
                committed(kafka_bootstrap, consumers.group, catalog.batches(POOL, "premium"), partition)
                == offset + 1
            ),
            30,
            "the batch's offset to be committed",
        )
        # Same member, never evicted: no rebalance revoked anything, and the commit was accepted.
        assert group_members(admin, consumers.group) == members
        assert "revoked" not in consumers.log(proc)
        reader.read(1.0)
        assert len(reader.of(TaskCompleted)) == 2  # the calibration batch and the long one, once each
    finally:
        reader.close()
