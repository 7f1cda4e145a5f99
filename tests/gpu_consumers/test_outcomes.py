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
