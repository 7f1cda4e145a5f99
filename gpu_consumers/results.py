"""The result events a GPU consumer emits for a batch's tasks: pure builders, no I/O.

Sequences: the job view applies a story's updates in (sequence, event_time) order, and a task's
events here derive from its BatchTask, so they carry the task's sequence plus a fixed step: started +1,
progress +2, and the end state (completed, failed, expired) +3. A redelivered batch's TaskStarted then
never overrides the end state an earlier run already reached. A TaskFailed's sequence and attempt
are kept within the contract's bounds (:mod:`schemas.contract`), so a task refused for a sequence
without room left, or an attempt out of range, can still be failed where the job view accepts it.
Attempts stay inside the run of the story the task belongs to (:func:`schemas.contract.retry_of`): a
retry beyond that run's ten attempts reports its last one.
"""

from __future__ import annotations

import hashlib

from schemas.contract import MAX_SEQUENCE as CONTRACT_MAX_SEQUENCE
from schemas.contract import attempt_within_run
from schemas.events import BatchReady, TaskCompleted, TaskExpired, TaskFailed, TaskProgress, TaskStarted
from schemas.records import BatchTask, OutputArtifact

STARTED_STEP = 1
PROGRESS_STEP = 2
END_STEP = 3
# The largest sequence an event may carry (the contract's bound, far below Avro's 2**63 - 1).
MAX_SEQUENCE = CONTRACT_MAX_SEQUENCE
# Seeds fit a signed 32-bit range for models whose generators refuse larger ones.
_DERIVED_SEED_RANGE = 2**31


def seed_for(task: BatchTask, batch: BatchReady) -> int:
    """The task's seed: its own, else the batch's, else one derived from its id (so a redo matches)."""
    if task.params.seed is not None:
        return task.params.seed
    if batch.params.seed is not None:
        return batch.params.seed
    digest = hashlib.sha256(task.task_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % _DERIVED_SEED_RANGE


def negative_prompt_for(task: BatchTask, batch: BatchReady) -> str:
    return task.params.negative_prompt or batch.params.negative_prompt or ""


def deadline_of(task: BatchTask, batch: BatchReady) -> int | None:
    """The earliest deadline that applies to the task (its own or the batch's), or ``None``."""
    deadlines = [value for value in (task.deadline, batch.deadline) if value is not None]
    return min(deadlines) if deadlines else None


def started(batch: BatchReady, task: BatchTask, consumer_id: str, attempt: int) -> TaskStarted:
    return TaskStarted(
        sequence=task.sequence + STARTED_STEP,
        story_id=task.story_id,
        task_id=task.task_id,
        batch_id=batch.batch_id,
        consumer_id=consumer_id,
        attempt=_in_run(task, attempt),
    )


def _in_run(task: BatchTask, attempt: int) -> int:
    """``attempt`` (the task's own plus the retries so far) kept inside the task's run."""
    return attempt_within_run(task.attempt, attempt - task.attempt)


def progress(batch: BatchReady, task: BatchTask, consumer_id: str, step: int, total: int) -> TaskProgress:
    return TaskProgress(
        sequence=task.sequence + PROGRESS_STEP,
        story_id=task.story_id,
        task_id=task.task_id,
        batch_id=batch.batch_id,
        consumer_id=consumer_id,
        step=step,
        total_steps=total,
    )


def completed(
    batch: BatchReady,
    task: BatchTask,
    consumer_id: str,
    *,
    attempt: int,
    output: OutputArtifact,
    seed: int,
    run_ms: int,
    gpu_seconds: float,
) -> TaskCompleted:
    return TaskCompleted(
        sequence=task.sequence + END_STEP,
        story_id=task.story_id,
        task_id=task.task_id,
        batch_id=batch.batch_id,
        consumer_id=consumer_id,
        attempt=_in_run(task, attempt),
        outputs=(output,),
        seed=seed,
        run_ms=run_ms,
        gpu_seconds=gpu_seconds,
    )


def failed(
    batch: BatchReady, task: BatchTask, consumer_id: str, *, error_class: str, message: str, attempt: int
) -> TaskFailed:
    # retriable=False: this consumer already spent the retry budget; resubmitting is the caller's call.
    return TaskFailed(
        sequence=max(0, min(task.sequence + END_STEP, MAX_SEQUENCE)),
        story_id=task.story_id,
        task_id=task.task_id,
        batch_id=batch.batch_id,
        consumer_id=consumer_id,
        error_class=error_class,
        message=message,
        attempt=_in_run(task, attempt),
        retriable=False,
    )


def expired(task: BatchTask, deadline: int) -> TaskExpired:
    return TaskExpired(
        sequence=task.sequence + END_STEP,
        story_id=task.story_id,
        task_id=task.task_id,
        deadline=deadline,
        attempt=task.attempt,
    )
