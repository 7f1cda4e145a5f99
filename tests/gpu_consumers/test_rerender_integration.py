"""``storee replay gpu:<pool> --rerender --execute`` on the real broker renders completed tasks again.

A member completes a batch and stops. An offset reset without a re-render request re-delivers the
batch and its tasks are announced from their manifests (not rendered). ``storee replay gpu:tiny:premium
--to-earliest --rerender --execute`` stores a request and moves the offsets: the next member renders
the same tasks again and emits new TaskCompleted events, and the job view's reduction shows them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition

from ops.cli import main
from ops.replay.reader import ReplayReader
from ops.runtime.kafka import make_consumer
from schemas.events import BatchReady, Event, TaskCompleted
from schemas.records import Tier
from schemas.topics import TopicCatalog
from streams.view import reduce_story
from streams.view_facts import expand
from tests.gpu_consumers.helpers import POOL, EventReader, make_batch, publish
from tests.gpu_consumers.members import running_member, when

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _groups_empty(bootstrap: str, groups: list[str]) -> bool:
    reader = ReplayReader(bootstrap)
    try:
        return all(not reader.members(group) for group in groups)
    finally:
        reader.close()


def _reset(bootstrap: str, group: str, topic: str, partition: int, offset: int) -> None:
    """An offset reset by hand (no storee replay, so no re-render request)."""
    consumer = make_consumer(bootstrap, group)
    try:
        consumer.commit(offsets=[TopicPartition(topic, partition, offset)], asynchronous=False)
    finally:
        consumer.close()


def _view_task(events: list[Event], batch: BatchReady, task_id: str) -> dict:  # type: ignore[type-arg]
    story_id = batch.tasks[0].story_id
    mine = [batch, *(e for e in events if getattr(e, "story_id", None) == story_id)]
    facts = [fact for event in mine for fact in expand(event)]
    view = reduce_story(story_id, None, {}, facts, count_scenes=lambda story: len(batch.tasks))
    return dict(view.tasks[task_id])


def test_a_rerender_replay_renders_a_completed_task_again_and_a_plain_reset_does_not(
    catalog: TopicCatalog,
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    batch = make_batch(["a fox", "a cat"])
    task_ids = [t.task_id for t in batch.tasks]
    group = f"{topic_prefix}gpu-consumers.{POOL}.premium"
    groups = [group, f"{topic_prefix}gpu-consumers.{POOL}.free"]
    topic = catalog.batches(POOL, Tier.PREMIUM)
    events = EventReader(kafka_bootstrap, catalog.task_events, 3)
    try:
        with running_member(kafka_bootstrap, topic_prefix, tmp_path) as member:
            partition, offset = publish(kafka_bootstrap, catalog, batch)
            events.wait(lambda r: len(r.of(TaskCompleted)) == 2, 30, "the batch to complete")
        output_dir = member.settings.output_dir
        when(lambda: _groups_empty(kafka_bootstrap, groups), 30, "the groups to be empty")

        # 1. A reset without a request: announced from the manifests, nothing rendered.
        _reset(kafka_bootstrap, group, topic, partition, offset)
        with running_member(kafka_bootstrap, topic_prefix, tmp_path) as member:
            events.wait(lambda r: len(r.of(TaskCompleted)) == 4, 30, "the re-delivered batch to be announced")
            assert member.runner.calls == []
            assert {(c.run_ms, c.gpu_seconds) for c in events.of(TaskCompleted)[2:]} == {(0, 0.0)}
        when(lambda: _groups_empty(kafka_bootstrap, groups), 30, "the groups to be empty")

        # 2. storee replay --rerender --execute: a request, then the offsets; rendered again.
        monkeypatch.setenv("TOPIC_PREFIX", topic_prefix)
        monkeypatch.setenv("GPU_POOLS", json.dumps({POOL: {"pipeline": "simulated"}}))
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
        status = main(["replay", f"gpu:{POOL}:premium", "--to-earliest", "--rerender", "--execute",
                       "--output-dir", str(output_dir), "--json"])  # fmt: skip
        printed = capsys.readouterr()
        assert printed.out, f"exit {status}: {printed.err}"
        doc = json.loads(printed.out)
        assert status == 0 and doc["executed"], doc
        (plan,) = doc["plans"]
        assert plan["group"] == group
        windows = plan["rerender"]["windows"]
        assert {"topic": topic, "partition": partition, "first": offset, "last": offset} in windows
        assert Path(plan["rerender"]["stored_at"].removeprefix("file://")).is_file()
        with running_member(kafka_bootstrap, topic_prefix, tmp_path) as member:
            events.wait(lambda r: len(r.of(TaskCompleted)) == 6, 30, "the batch to be rendered again")
            assert member.runner.calls == [task_ids]
        old, reused, new = (events.of(TaskCompleted)[i : i + 2] for i in (0, 2, 4))
        assert all(c.run_ms > 0 or c.gpu_seconds > 0 for c in new)
        assert {c.event_id for c in new}.isdisjoint({c.event_id for c in old + reused})
        # The view keeps the newest completion: same rank (attempt), later event time.
        for completion in new:
            task = _view_task(events.events, batch, completion.task_id)
            assert task["status"] == "completed"
            assert task["_head"][-1] == completion.event_id
            assert task["finished_at"] == completion.event_time
    finally:
        events.close()
