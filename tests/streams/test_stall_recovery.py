"""The stall watchdog on a real worker: a partition that stops being read is nudged back, or restarted.

The stall is made on demand by ``tests/streams/stalled_worker.py`` (see there); STREAMS_STALL_TIMEOUT is
3 s so each test takes seconds.
"""

from __future__ import annotations

import uuid

import pytest

from tests.streams.harness import (
    TopicReader,
    Worker,
    delete_prefixed_topics,
    ensure_catalog,
    not_batched,
    one_task_per_partition,
    worker_env,
)
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 12
STALLED = "tests.streams.stalled_worker"


@pytest.fixture
def setup(kafka_bootstrap, mongo_url, tmp_path):  # type: ignore[no-untyped-def]
    prefix = f"t{uuid.uuid4().hex[:10]}."
    catalog = ensure_catalog(kafka_bootstrap, prefix)
    reader = TopicReader(kafka_bootstrap, [catalog.batches("default", "premium")], f"r-{uuid.uuid4().hex}")

    def make_worker(name: str, module: str = "streams", **env: object) -> Worker:
        common = dict(BATCH_SIZE=1, STREAMS_MATERIALIZER="false", STREAMS_STALL_TIMEOUT=3, **env)
        return Worker(
            worker_env(kafka_bootstrap, mongo_url, "unused", prefix, tmp_path / name, **common),
            tmp_path / f"{name}.log",
            module=module,
        )

    def one_task_each(name: str) -> set[str]:
        return one_task_per_partition(kafka_bootstrap, catalog.tasks_requested, name, PARTITIONS)

    def missing(wanted: set[str]) -> set[str]:
        return not_batched(reader, wanted)

    workers: list[Worker] = []
    try:
        yield make_worker, one_task_each, missing, workers
    finally:
        for worker in workers:
            worker.stop()
        reader.close()
        delete_prefixed_topics(kafka_bootstrap, prefix)


def test_a_partition_no_longer_read_is_sought_back_and_read_again(setup) -> None:
    make_worker, one_task_each, missing, workers = setup
    worker = make_worker("stalled", STALLED, STALL_FAULT="once")
    workers.append(worker.start())
    wait_for(lambda: "is no longer read" in worker.log_tail(50_000), 90, "the fault")
    wanted = one_task_each("nudged")
    wait_for(lambda: not missing(wanted), 60, "a batch from every partition, the stalled one too")
    log = worker.log_tail(50_000)
    assert "seeking it to its committed offset" in log, log
    assert "restarting the worker" not in log and worker.alive()


def test_a_partition_that_stays_unread_restarts_the_worker_and_nothing_is_lost(setup) -> None:
    make_worker, one_task_each, missing, workers = setup
    stalled = make_worker("stalled", STALLED, STALL_FAULT="always")
    workers.append(stalled.start())
    wait_for(lambda: "is no longer read" in stalled.log_tail(50_000), 90, "the fault")
    wanted = one_task_each("restarted")
    wait_for(lambda: not stalled.alive(), 60, "the stalled worker to exit")
    log = stalled.log_tail(50_000)
    assert "seeking it to its committed offset" in log and "restarting the worker" in log, log
    assert stalled.process is not None and stalled.process.returncode != 0
    assert missing(wanted)  # the stalled partition's task was never batched ...
    healthy = make_worker("healthy")  # ... what a supervisor does next: start the worker again
    workers.append(healthy.start())
    wait_for(lambda: not missing(wanted), 90, "every task batched after the restart")
