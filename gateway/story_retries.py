"""Retrying a story (``POST /v1/stories/{id}/retry``): its failed and expired tasks run again.

A story that ended ``failed`` (some task failed for good or expired) gets a new *run*: each of those
tasks is requested again on ``tasks.requested``, exactly as its first TaskRequested asked (prompt,
model, params, input, as the job view keeps them), with the first attempt of the next run
(:func:`schemas.contract.first_attempt`) and a fresh start-by deadline: as long as the first run's, or
``start_within_s`` from the request's body (an expired story usually needs a longer one).
The job view lets the newer run reopen the tasks, and the materializer ends the story again with a
StoryCompleted of that run; the story's ``attempts`` lists every run and how it ended.

Ids are derived from the task and the attempt, so two requests racing on the same failed story publish
the same events and the batcher and GPU consumers see duplicates, not a second render. Refused with a
409 naming why: a story still open (wait for it), completed (nothing to retry), cancelled (submit it
again), failed before any task ran (submit it again), out of runs (:data:`MAX_STORY_RETRIES`), or with
tasks stored before the view kept their parameters (an operator's ``storee view rebuild`` fixes that).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from gateway.accounts import Principal
from gateway.exceptions import Conflict, ServiceUnavailable
from gateway.publisher import PublishFailed
from gateway.state import GatewayState
from schemas.contract import MAX_SEQUENCE, MAX_STORY_RETRIES, first_attempt
from schemas.events import TaskRequested
from schemas.ids import derived_event_id, now_ms
from schemas.records import GenerationParams, MediaRef, TaskType, Tier
from schemas.view import StoryStatus, TaskStatus

log = logging.getLogger(__name__)

RETRIED_STATUSES = (TaskStatus.FAILED.value, TaskStatus.EXPIRED.value)
# A deadline the first run did not state (older documents): the splitter's default TASK_TTL.
_DEFAULT_WINDOW_MS = 3_600_000
_REFUSALS = {
    StoryStatus.QUEUED.value: "story is still queued; a story is retried after it failed",
    StoryStatus.RUNNING.value: "story is still running; a story is retried after it failed",
    StoryStatus.COMPLETED.value: "story completed; there is nothing to retry",
    StoryStatus.CANCELLED.value: "story was cancelled; submit it again instead",
}


@dataclass(frozen=True, slots=True)
class Retried:
    story_id: str
    retry: int
    task_ids: list[str]


async def retry(
    state: GatewayState, principal: Principal, story: dict[str, Any], *, start_within_s: int | None = None
) -> Retried:
    """Request ``story``'s failed and expired tasks again as its next run; return what was requested.
    They must start within ``start_within_s``, or as long as the first run had."""
    story_id = story["_id"]
    status = story.get("status")
    if status in _REFUSALS:
        raise Conflict(_REFUSALS[status])
    error = story.get("error")
    if error:
        raise Conflict(f"story failed before any task ran ({error.get('code')}); submit it again instead")
    number = int(story.get("retry") or 0) + 1
    if number > MAX_STORY_RETRIES:
        raise Conflict(f"story was retried {MAX_STORY_RETRIES} times already, the most a story may be")
    tasks = [
        t
        for t in await state.jobs.tasks_of(principal.account_id, story_id)
        if t["status"] in RETRIED_STATUSES
    ]
    if not tasks:
        raise Conflict("story has no failed or expired task to retry")
    stale = [t["_id"] for t in tasks if t.get("params") is None]
    if stale:
        raise Conflict(
            f"tasks {stale[:3]} were recorded before the job view kept their parameters; "
            "an operator's `storee view rebuild` lets them be retried"
        )
    now = now_ms()
    sequence = min(int(story.get("_seq") or 0) + 1, MAX_SEQUENCE - 10)
    window = None if start_within_s is None else start_within_s * 1000
    events = [_request(story, task, number, now, sequence, window) for task in tasks]
    try:
        await asyncio.gather(
            *(state.publisher.publish(state.catalog.tasks_requested, story_id, e) for e in events)
        )
    except PublishFailed as exc:
        # Whatever Kafka did take runs; the story ends again and may be retried once more.
        log.warning("retry publish failed story_id=%s retry=%d: %s", story_id, number, exc)
        raise ServiceUnavailable(
            "Kafka did not acknowledge the retry; retry later",
            retry_after=state.settings.unavailable_retry_after_s,
        ) from exc
    log.info("retried story_id=%s retry=%d tasks=%d", story_id, number, len(events))
    return Retried(story_id, number, [e.task_id for e in events])


def _request(
    story: dict[str, Any], task: dict[str, Any], number: int, now: int, sequence: int, window: int | None
) -> TaskRequested:
    attempt = first_attempt(number)
    return TaskRequested(
        event_id=derived_event_id("TaskRequested", task["_id"], attempt),
        event_time=now,
        sequence=sequence,
        story_id=story["_id"],
        task_id=task["_id"],
        account_id=task["account_id"],
        tier=Tier(task["tier"]),
        task_type=TaskType(task["task_type"]),
        model=task["model"],
        scene_index=int(task["scene_index"]),
        task_count=int(story["task_count"]),
        prompt=task["prompt"],
        params=GenerationParams.from_record(task["params"]),
        input=MediaRef.from_record(task["input"]) if task.get("input") else None,
        attempt=attempt,
        deadline=now + (window if window is not None else _window_ms(story, task)),
    )


def _window_ms(story: dict[str, Any], task: dict[str, Any]) -> int:
    """How long the first run had to start: its deadline after the submission (at least a second)."""
    deadline, submitted_at = task.get("deadline"), story.get("submitted_at")
    if deadline is None or submitted_at is None:
        return _DEFAULT_WINDOW_MS
    return max(int(deadline) - int(submitted_at), 1000)
