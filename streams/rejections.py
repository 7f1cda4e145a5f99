"""The TaskFailed a stream processor emits for a task it cannot pass on (pure, no I/O).

Its event id depends only on the task, its attempt and the error class, so a replayed record re-emits
the same event and the job view counts it once.
"""

from __future__ import annotations

from schemas.contract import MAX_ATTEMPT, MAX_SEQUENCE
from schemas.events import StorySubmitted, TaskFailed, TaskRequested
from schemas.ids import now_ms, task_id
from streams.event_ids import derived_event_id

CONSUMER_ID = "storee-streams"
MAX_MESSAGE_CHARS = 2_000


def failed_task(
    *, story_id: str, task: str, sequence: int, attempt: int, error: BaseException, consumer_id: str
) -> TaskFailed:
    """TaskFailed (not retriable) for ``task`` of ``story_id`` because of ``error``."""
    kind = f"{type(error).__module__}.{type(error).__qualname__}"
    return TaskFailed(
        event_id=derived_event_id("TaskFailed", task, attempt, type(error).__name__),
        event_time=now_ms(),
        # Within the contract even for a task refused for its own out-of-range sequence or attempt, so
        # the job view takes the failure.
        sequence=min(max(sequence, 0) + 1, MAX_SEQUENCE),
        story_id=story_id,
        task_id=task,
        consumer_id=consumer_id,
        error_class=kind,
        message=(str(error) or kind)[:MAX_MESSAGE_CHARS],
        attempt=min(max(attempt, 0), MAX_ATTEMPT),
        retriable=False,
    )


def rejected_task(story: StorySubmitted, index: int, error: BaseException, consumer_id: str) -> TaskFailed:
    """TaskFailed for scene ``index`` of a story the splitter could not split."""
    return failed_task(
        story_id=story.story_id,
        task=task_id(story.story_id, index),
        sequence=story.sequence,
        attempt=0,
        error=error,
        consumer_id=consumer_id,
    )


def refused_task(task: TaskRequested, error: BaseException, consumer_id: str) -> TaskFailed:
    """TaskFailed for a task the batcher cannot batch."""
    return failed_task(
        story_id=task.story_id,
        task=task.task_id,
        sequence=task.sequence,
        attempt=task.attempt,
        error=error,
        consumer_id=consumer_id,
    )
