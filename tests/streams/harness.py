"""Helpers for the stream integration tests: a worker subprocess, topic readers, waiting on conditions.

The worker and the broker probes are shared with the benches (:mod:`ops.bench.stream_worker`,
:mod:`ops.bench.kafka_probe`); the scenarios only tests need are here.
"""

from __future__ import annotations

from ops.bench.kafka_probe import (
    CODEC,
    TopicReader,
    committed,
    committed_offsets,
    delete_prefixed_topics,
    end_offsets,
    ensure_catalog,
    member_partitions,
    produce,
    produce_raw,
    produce_to_partitions,
)
from ops.bench.stream_worker import Worker, worker_env
from schemas.events import BatchReady
from schemas.ids import now_ms
from streams.splitting import SplitPolicy, split
from tests.streams.factories import story

__all__ = [
    "CODEC", "TopicReader", "Worker", "committed", "committed_offsets", "delete_prefixed_topics",
    "end_offsets", "ensure_catalog", "member_partitions", "not_batched", "one_task_per_partition", "produce",
    "produce_raw", "produce_to_partitions", "worker_env",
]  # fmt: skip


def one_task_per_partition(bootstrap: str, topic: str, name: str, partitions: int) -> set[str]:
    """Produce one task to each partition of tasks.requested (stories ``<name>-<p>``); return their ids."""
    now = now_ms()
    tasks = [
        split(story(f"{name}-{p}", n_scenes=1, event_time=now, submitted_at=now), SplitPolicy())[0]
        for p in range(partitions)
    ]
    produce_to_partitions(bootstrap, topic, tasks)
    return {task.task_id for task in tasks}


def not_batched(reader: TopicReader, wanted: set[str]) -> set[str]:
    """The tasks of ``wanted`` that no BatchReady ``reader`` has seen carries yet."""
    reader.poll()
    return wanted - {task.task_id for batch in reader.events(BatchReady) for task in batch.tasks}
