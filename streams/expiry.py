"""Expiry (seed 001): a task not started before its deadline gets TaskExpired (pure, no I/O).

The splitter gives every task its story's deadline (``start_within_s``, else ``TASK_TTL`` after submission,
capped at ``MAX_TASK_TTL``; see ``splitting.deadline_of``). The batcher expires tasks still
waiting in an open batch (after a long outage, say) and never ships one past its deadline; a batch
carries the earliest deadline of its tasks, and GPU consumers honour it for the tasks they hold. The
deadline sweeper (:mod:`streams.sweep_loop`) expires what the job view shows still waiting anywhere else.
A task's TaskExpired has one event id whoever emits it, so the view counts it once.

Pure logic, named for what it computes; its I/O shells are :mod:`streams.batch_agent` and
:mod:`streams.sweep_loop`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from schemas.contract import MAX_SEQUENCE
from schemas.events import TaskExpired, TaskRequested
from streams.batching import Pending
from streams.event_ids import derived_event_id


def is_expired(task: TaskRequested, now: int) -> bool:
    return task.deadline is not None and now >= task.deadline


def expire(pending: Pending, now: int) -> tuple[Pending, list[TaskRequested]]:
    """Remove the open tasks whose deadline has passed; return them."""
    gone = [p.task for p in pending.tasks if is_expired(p.task, now)]
    if not gone:
        return pending, []
    kept = tuple(p for p in pending.tasks if not is_expired(p.task, now))
    return replace(pending, tasks=kept), gone


def task_expired(task: TaskRequested, now: int) -> TaskExpired:
    """The TaskExpired for ``task``; its id depends only on the task, so a re-emission is a duplicate."""
    return TaskExpired(
        event_id=derived_event_id("TaskExpired", task.task_id, task.attempt),
        event_time=now,
        sequence=task.sequence + 1,
        story_id=task.story_id,
        task_id=task.task_id,
        deadline=task.deadline if task.deadline is not None else now,
        attempt=task.attempt,
    )


def overdue_expired(task: Mapping[str, Any], now: int) -> TaskExpired:
    """The TaskExpired of an overdue task as the job view shows it (``_id``, story_id, deadline,
    attempt, ``_seq``): the event id :func:`task_expired` gives it, the sequence after the view's."""
    attempt = int(task.get("attempt") or 0)
    return TaskExpired(
        event_id=derived_event_id("TaskExpired", task["_id"], attempt),
        event_time=now,
        sequence=min(int(task.get("_seq") or 0) + 1, MAX_SEQUENCE),
        story_id=task["story_id"],
        task_id=task["_id"],
        deadline=int(task["deadline"]),
        attempt=attempt,
    )
