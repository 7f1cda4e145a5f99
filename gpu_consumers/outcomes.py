"""What became of each task of one batch so far: the ledger a failed batch is ended from.

A task has at most one outcome: ``completed`` (rendered now), ``reused`` (completed earlier, its
stored output re-announced), ``failed``, ``expired``, ``cancelled`` (skipped, no event) or ``probe``
(the end-to-end probe's, ended without a render). When handling a batch fails part-way, every task
still :meth:`open` is failed with the reason, so no task of the batch is left without an end.
"""

from __future__ import annotations

import collections
import enum
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from gpu_consumers.work import PendingBatch
from schemas.events import BatchReady
from schemas.records import BatchTask


class TaskOutcome(enum.StrEnum):
    """How a task of a batch ended; the value is the ``outcome`` label of ``storee_gpu_tasks_total``."""

    COMPLETED = "completed"
    REUSED = "reused"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    PROBE = "probe"  # the end-to-end probe's task, ended without a render (gpu_consumers.probes)


class BatchOutcomes:
    """Outcomes of one batch's tasks, in the batch's order."""

    def __init__(self, tasks: Iterable[BatchTask]) -> None:
        self._tasks = list(tasks)
        self._ended: dict[str, TaskOutcome] = {}

    def end(self, task: BatchTask, outcome: TaskOutcome) -> None:
        try:
            self._ended[task.task_id] = TaskOutcome(outcome)
        except ValueError:
            names = tuple(str(known) for known in TaskOutcome)
            raise ValueError(f"outcome must be one of {names}, got {outcome!r}") from None

    def reopen(self, task_ids: Iterable[str]) -> None:
        """Forget the outcomes of ``task_ids`` (their end events were refused, so they did not happen)."""
        for task_id in task_ids:
            self._ended.pop(task_id, None)

    def outcome(self, task: BatchTask) -> TaskOutcome | None:
        return self._ended.get(task.task_id)

    def open(self) -> list[BatchTask]:
        """The tasks without an outcome yet."""
        return [task for task in self._tasks if task.task_id not in self._ended]

    def counts(self) -> collections.Counter[TaskOutcome]:
        counts: collections.Counter[TaskOutcome] = collections.Counter(dict.fromkeys(TaskOutcome, 0))
        counts.update(self._ended.values())
        return counts


@dataclass
class BatchRun:
    """One batch being handled: its record, its outcomes so far, and where its time went."""

    pending: PendingBatch
    outcomes: BatchOutcomes
    pipeline_s: float = 0.0
    waited_s: float = 0.0
    first_error: BaseException | None = None  # the reason the batch record goes to the DLQ
    aborted: bool = False
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def of(cls, pending: PendingBatch) -> BatchRun:
        return cls(pending, BatchOutcomes(pending.batch.tasks))

    @property
    def batch(self) -> BatchReady:
        return self.pending.batch
