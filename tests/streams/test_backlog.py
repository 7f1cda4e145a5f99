"""Stories that arrive while no worker runs are all split when one starts, on every partition.

Found by running ``make run`` twice: the second run's free story sat on a partition of
stories.submitted that no worker had ever committed an offset for, was produced a second before the
worker joined, and was never split.
"""

from __future__ import annotations

import uuid

import pytest

from schemas.events import StorySubmitted, TaskRequested
from schemas.ids import now_ms
from tests.streams.factories import story
from tests.streams.harness import (
    TopicReader,
    Worker,
    delete_prefixed_topics,
    ensure_catalog,
    produce_to_partitions,
    worker_env,
)
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _stories(tag: str, count: int) -> list[StorySubmitted]:
    now = now_ms()
    return [story(f"{tag}-{i}", n_scenes=2, event_time=now, submitted_at=now) for i in range(count)]


def test_stories_produced_between_runs_are_split_on_every_partition(kafka_bootstrap, mongo_url, tmp_path):
    prefix = f"t{uuid.uuid4().hex[:10]}."
    catalog = ensure_catalog(kafka_bootstrap, prefix)
    common = (kafka_bootstrap, mongo_url, "unused", prefix)
    env = dict(STREAMS_MATERIALIZER="false")
    tasks = TopicReader(kafka_bootstrap, [catalog.tasks_requested], f"r-{uuid.uuid4().hex}")

    def split_stories() -> set[str]:
        tasks.poll()
        return {task.story_id for task in tasks.events(TaskRequested)}

    try:
        # A first run consumes one story on partition 0 only, then stops cleanly.
        first = Worker(worker_env(*common, tmp_path / "a", **env), tmp_path / "first.log").start()
        try:
            produce_to_partitions(kafka_bootstrap, catalog.stories_submitted, _stories("first", 1))
            wait_for(lambda: "first-0" in split_stories(), 90, f"the first story; log: {first.log_tail()}")
        finally:
            first.stop()
        # While nothing runs, a story lands on every partition, most of them never consumed before.
        waiting = _stories("between", 6)
        produce_to_partitions(kafka_bootstrap, catalog.stories_submitted, waiting)
        second = Worker(worker_env(*common, tmp_path / "b", **env), tmp_path / "second.log").start()
        try:
            expected = {s.story_id for s in waiting}
            wait_for(lambda: expected <= split_stories(), 90,
                     f"every waiting story split, missing {expected - split_stories()}; "
                     f"log: {second.log_tail()}")  # fmt: skip
        finally:
            second.stop()
    finally:
        tasks.close()
        delete_prefixed_topics(kafka_bootstrap, prefix)
