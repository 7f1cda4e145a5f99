"""A batcher killed with partial batches pending is restarted: every task is batched exactly once."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict

import pytest

from schemas.events import BatchReady
from schemas.ids import now_ms
from streams.splitting import SplitPolicy, split
from tests.streams.factories import story
from tests.streams.harness import (
    TopicReader,
    Worker,
    committed,
    delete_prefixed_topics,
    ensure_catalog,
    produce,
    worker_env,
)
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def pending_entries(reader: TopicReader | None) -> dict[bytes, dict]:
    """The latest value of every key of the batcher's changelog."""
    if reader is None:
        return {}
    reader.poll()
    latest = {}
    for record in reader.records:
        latest[record.key()] = json.loads(record.value()) if record.value() else {"t": [], "x": []}
    return latest


def test_a_killed_worker_restarts_and_batches_every_task_exactly_once(kafka_bootstrap, mongo_url, tmp_path):
    prefix = f"t{uuid.uuid4().hex[:10]}."
    catalog = ensure_catalog(kafka_bootstrap, prefix)
    now = now_ms()
    tasks = [
        task
        for i in range(6)
        for task in split(story(f"crash-{i}", n_scenes=4, event_time=now, submitted_at=now), SplitPolicy())
    ]
    common = (kafka_bootstrap, mongo_url, "unused", prefix)
    env = dict(BATCH_SIZE=8, STREAMS_MATERIALIZER="false")
    first = Worker(worker_env(*common, tmp_path / "a", BATCH_TIMEOUT=120, **env), tmp_path / "first.log")
    second = Worker(worker_env(*common, tmp_path / "b", BATCH_TIMEOUT=0.3, **env), tmp_path / "second.log")
    batches = TopicReader(kafka_bootstrap, [catalog.batches("default", "premium")], f"r-{uuid.uuid4().hex}")
    changelog: TopicReader | None = None
    try:
        first.start()
        produce(kafka_bootstrap, catalog.tasks_requested, tasks, key=lambda e: e.story_id)
        group = f"{prefix}streams"
        # Faust commits offsets only after flushing its producer, so the changelog then holds every task.
        wait_for(lambda: committed(kafka_bootstrap, group, catalog.tasks_requested, 12) >= len(tasks), 90,
                 f"the first worker to take every task in; log: {first.log_tail()}")  # fmt: skip
        # Faust created its changelog topic on start; read it only now that it exists.
        changelog = TopicReader(
            kafka_bootstrap, [f"{prefix}streams-batcher-pending-changelog"], f"r-{uuid.uuid4().hex}"
        )
        changelog.read_to_end()
        open_tasks = sum(len(entry["t"]) for entry in pending_entries(changelog).values())
        assert open_tasks > 0, "the test needs partial batches pending at the crash"
        first.kill()
        second.start()

        def drained() -> bool:
            batches.poll()
            entries = pending_entries(changelog)
            return bool(entries) and all(not e["t"] and not e["x"] for e in entries.values())

        wait_for(drained, 90, f"every open batch shipped and confirmed; log: {second.log_tail()}")
        batches.poll()
        batch_ids = defaultdict(set)
        for batch in batches.events(BatchReady):
            for task in batch.tasks:
                batch_ids[task.task_id].add(batch.batch_id)
        assert sorted(batch_ids) == sorted(t.task_id for t in tasks)
        assert {task_id: len(ids) for task_id, ids in batch_ids.items() if len(ids) != 1} == {}
    finally:
        first.kill()
        second.stop()
        batches.close()
        if changelog is not None:
            changelog.close()
        delete_prefixed_topics(kafka_bootstrap, prefix)
