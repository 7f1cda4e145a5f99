"""faust-streaming users report partitions never fetched again after a rebalance: prove ours are."""

from __future__ import annotations

import uuid

import pytest

from tests.streams.harness import (
    TopicReader,
    Worker,
    delete_prefixed_topics,
    ensure_catalog,
    member_partitions,
    not_batched,
    one_task_per_partition,
    worker_env,
)
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 12


def test_every_partition_is_consumed_again_after_each_rebalance(kafka_bootstrap, mongo_url, tmp_path):
    prefix = f"t{uuid.uuid4().hex[:10]}."
    catalog = ensure_catalog(kafka_bootstrap, prefix)
    common = (kafka_bootstrap, mongo_url, "unused", prefix)
    env = dict(BATCH_SIZE=1, STREAMS_MATERIALIZER="false")
    first = Worker(worker_env(*common, tmp_path / "a", **env), tmp_path / "first.log")
    second = Worker(worker_env(*common, tmp_path / "b", **env), tmp_path / "second.log")
    reader = TopicReader(kafka_bootstrap, [catalog.batches("default", "premium")], f"r-{uuid.uuid4().hex}")

    def round_trip(name: str, worker: Worker) -> None:
        """One task on every partition of tasks.requested; each must come out as a batch."""
        wanted = one_task_per_partition(kafka_bootstrap, catalog.tasks_requested, name, PARTITIONS)
        try:
            wait_for(lambda: not not_batched(reader, wanted), 90, f"{name}: a batch from every partition")
        except AssertionError as exc:
            missing = sorted(not_batched(reader, wanted))
            raise AssertionError(f"{exc}; missing {missing}; log: {worker.log_tail()}") from None

    try:
        first.start()
        round_trip("alone", first)
        group = f"{prefix}streams"

        def split_between(count: int):  # noqa: ANN202
            def check() -> bool:
                members = member_partitions(kafka_bootstrap, group, catalog.tasks_requested)
                return (
                    len(members) == count and all(members) and set().union(*members) == set(range(PARTITIONS))
                )

            return check

        wait_for(split_between(1), 60, "the first worker to own every partition")
        second.start()  # the group rebalances: partitions move to the second worker
        wait_for(split_between(2), 60, f"both workers to own partitions; log: {second.log_tail()}")
        round_trip("joined", second)
        second.stop()  # and rebalances again: every partition back on the first
        wait_for(split_between(1), 60, "the first worker to own every partition again")
        round_trip("left", first)
        assert first.alive()
    finally:
        first.stop()
        second.stop()
        reader.close()
        delete_prefixed_topics(kafka_bootstrap, prefix)
