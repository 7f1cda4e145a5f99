from __future__ import annotations

import pytest

from gpu_consumers.outcomes import BatchOutcomes
from tests.gpu_consumers.helpers import make_batch


def test_open_tasks_are_those_without_an_outcome_in_batch_order() -> None:
    tasks = make_batch(["a", "b", "c", "d"]).tasks
    outcomes = BatchOutcomes(tasks)
    outcomes.end(tasks[1], "completed")
    outcomes.end(tasks[3], "cancelled")
    assert outcomes.open() == [tasks[0], tasks[2]]
    assert outcomes.counts()["completed"] == 1 and outcomes.counts()["failed"] == 0
    outcomes.reopen([tasks[1].task_id])  # its TaskCompleted was refused: it did not happen
    assert outcomes.open() == [tasks[0], tasks[1], tasks[2]]
    with pytest.raises(ValueError, match="outcome must be one of"):
        outcomes.end(tasks[0], "lost")


def test_every_rated_series_exists_from_the_start() -> None:
    from prometheus_client import generate_latest

    from gpu_consumers.metrics import ConsumerMetrics

    text = generate_latest(ConsumerMetrics("p").registry).decode()
    for tier in ("premium", "free"):
        assert f'storee_gpu_batches_total{{pool="p",tier="{tier}"}} 0.0' in text
    assert 'storee_gpu_tasks_total{outcome="completed",pool="p"} 0.0' in text
