"""Cancels reach the GPU consumers, against the real broker.

StoryCancelled is produced on ``task.events`` as the gateway does. A member started after the cancel
still knows it (the watcher starts from the lookback, not the end), and a cancel that arrives while
a batch runs keeps that story's rendered output out of the store and its later chunks off the GPU.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from schemas.events import TaskCompleted, TaskProgress, TaskStarted
from schemas.topics import TopicCatalog
from tests.gpu_consumers.helpers import EventReader, mixed_batch, publish
from tests.gpu_consumers.members import ScriptedRunner, cancel, running_member, when

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_member_started_after_a_cancel_skips_that_story(
    catalog: TopicCatalog, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    cancel(kafka_bootstrap, catalog, "story-gone")
    events = EventReader(kafka_bootstrap, catalog.task_events, 3)
    try:
        with running_member(kafka_bootstrap, topic_prefix, tmp_path) as member:
            publish(kafka_bootstrap, catalog, mixed_batch({"story-gone": ["a0", "a1"], "story-kept": ["b0"]}))
            events.wait(lambda r: bool(r.of(TaskCompleted)), 30, "the kept story's task to complete")
            events.read(0.5)
            assert [c.task_id for c in events.of(TaskCompleted)] == ["story-kept:0"]
            # No event at all for the cancelled story's tasks: the job view marks them cancelled.
            assert {e.task_id for e in events.of(TaskStarted)} == {"story-kept:0"}
            assert member.runner.rendered() == ["story-kept:0"]
            assert member.metrics.count("storee_gpu_cancellations_seen_total") == 1
            assert member.metrics.count("storee_gpu_tasks_total", outcome="cancelled") == 2
    finally:
        events.close()


def test_a_cancel_during_a_batch_discards_its_output_and_skips_its_next_chunk(
    catalog: TopicCatalog, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    runner = ScriptedRunner()
    runner.gate = threading.Event()
    events = EventReader(kafka_bootstrap, catalog.task_events, 3)
    try:
        with running_member(kafka_bootstrap, topic_prefix, tmp_path, runner, max_batch_size=2) as member:
            # Chunks of two: [a0, b0] then [b1].
            publish(kafka_bootstrap, catalog, mixed_batch({"story-a": ["a0"], "story-b": ["b0", "b1"]}))
            when(runner.started.is_set, 30, "the first chunk to start")
            cancel(kafka_bootstrap, catalog, "story-b")
            when(
                lambda: member.metrics.count("storee_gpu_cancellations_seen_total") == 1,
                30,
                "the member to see the cancel",
            )
            runner.gate.set()
            events.wait(lambda r: bool(r.of(TaskCompleted)), 30, "story-a's task to complete")
            when(
                lambda: member.metrics.count("storee_gpu_tasks_total", outcome="cancelled") == 2, 30, "b0, b1"
            )
            events.read(0.5)
            assert [c.task_id for c in events.of(TaskCompleted)] == ["story-a:0"]
            assert runner.calls == [["story-a:0", "story-b:0"]]  # b1 never reached the GPU
            stored = tmp_path / "outputs" / "outputs"
            assert (stored / "story-a").is_dir() and not (stored / "story-b").exists()  # b0 not stored
            assert {p.task_id for p in events.of(TaskProgress)} <= {"story-a:0", "story-b:0"}
    finally:
        events.close()
