"""No GPU time on duplicates, against the real broker: a re-sent batch is announced, not rendered.

The batcher re-sends a batch after a crash, and a consumer redoes a batch whose commit it lost; in
both cases the same BatchReady (same batch id, same task ids) arrives again. Its tasks' outputs and
manifests are stored, so the member re-emits their TaskCompleted from the manifests (run_ms 0)
without calling the pipeline.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.runtime.storage import LocalStore
from schemas.events import TaskCompleted
from schemas.topics import TopicCatalog
from tests.gpu_consumers.helpers import EventReader, make_batch, publish
from tests.gpu_consumers.members import running_member, when

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_re_sent_batch_is_announced_from_its_manifests_without_rendering(
    catalog: TopicCatalog, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    batch = make_batch(["a fox", "a cat"])
    events = EventReader(kafka_bootstrap, catalog.task_events, 3)
    try:
        with running_member(kafka_bootstrap, topic_prefix, tmp_path) as member:
            publish(kafka_bootstrap, catalog, batch)
            events.wait(lambda r: len(r.of(TaskCompleted)) == 2, 30, "the batch to complete")
            publish(kafka_bootstrap, catalog, batch)
            events.wait(lambda r: len(r.of(TaskCompleted)) == 4, 30, "the re-sent batch to be announced")
            when(lambda: member.metrics.count("storee_gpu_tasks_total", outcome="reused") == 2, 10, "reuse")
            first, again = events.of(TaskCompleted)[:2], events.of(TaskCompleted)[2:]
            assert member.runner.calls == [[t.task_id for t in batch.tasks]]  # rendered once
            assert [c.outputs for c in again] == [c.outputs for c in first]
            assert {(c.run_ms, c.gpu_seconds) for c in again} == {(0, 0.0)}
            assert all(c.run_ms >= 0 for c in first)
            store = LocalStore(member.settings.output_dir)
            for completion in again:
                path = store.local_path(completion.outputs[0].uri)
                assert path.stat().st_size == completion.outputs[0].size_bytes
                assert path.with_suffix(".json").is_file()
    finally:
        events.close()
