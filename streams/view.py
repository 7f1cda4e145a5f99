"""The job view's reduction: events in, MongoDB documents out (pure, no I/O).

Every document is a function of the *set* of events applied to it, never of their order or count, so
duplicated, replayed and out-of-order events converge to the same document, and dropping the view and
replaying the topics rebuilds it identically. Three kinds of merge make that so:

* static fields (prompt, account, ...) come from the highest-priority source (TaskRequested over a
  batch's copy), ties broken by the smallest ``(event_time, event_id)``;
* monotone fields merge with ``min`` or ``max`` (queued_at, started_at, step, updated_at);
* the task's status comes from its *head*: the event with the greatest key. Final outcomes (completed >
  failed for good > expired) beat everything; otherwise the higher attempt wins, then the later phase
  (queued < batched < running < failed-but-retriable), then ``(event_time, sequence, event_id)``.

A cancelled story turns its tasks without a final outcome into ``cancelled``; a clip that completes
anyway stays completed. Story fields (counts, progress, status, outputs, times) are derived from the
story's task documents every time. Bookkeeping fields start with ``_``; readers ignore them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from schemas.events import (
    BatchReady,
    Event,
    StoryCancelled,
    StoryCompleted,
    StorySubmitted,
    TaskCompleted,
    TaskExpired,
    TaskFailed,
    TaskProgress,
    TaskRequested,
    TaskStarted,
)
from schemas.records import BatchTask
from schemas.view import TERMINAL_TASK_STATUSES, StoryStatus, TaskStatus
from streams.event_ids import derived_event_id
from streams.exceptions import StreamsError

Doc = dict[str, Any]
# How many scenes a submitted story yields; raises a StreamsError (with ``code``) when it yields none.
SceneCounter = Callable[[StorySubmitted], int]

# Phases of a task without a final outcome, in the order they happen.
_QUEUED, _BATCHED, _RUNNING, _RETRYING = 0, 1, 2, 3
# Final outcomes, weakest first.
_EXPIRED, _FAILED, _COMPLETED = 0, 1, 2
_OPEN_STATUS = {
    _QUEUED: TaskStatus.QUEUED,
    _BATCHED: TaskStatus.BATCHED,
    _RUNNING: TaskStatus.RUNNING,
    _RETRYING: TaskStatus.FAILED,
}
_FINAL_STATUS = {_EXPIRED: TaskStatus.EXPIRED, _FAILED: TaskStatus.FAILED, _COMPLETED: TaskStatus.COMPLETED}
_SIMULATED_SCHEMES = ("sim://", "simulated://")


@dataclass(frozen=True, slots=True)
class BatchedTask:
    """One task of a BatchReady, as the view applies it to that task's story."""

    batch: BatchReady
    task: BatchTask


@dataclass(frozen=True, slots=True)
class RejectedStory:
    """A StorySubmitted that broke the contract, but names its story and account: the story fails."""

    story_id: str
    account_id: str
    event_time: int
    event_id: str
    reason: str
    sequence: int = 0


Fact = Event | BatchedTask | RejectedStory


@dataclass(frozen=True, slots=True)
class StoryView:
    """A story's documents after reduction, and the StoryCompleted to emit, if it just became due."""

    story: Doc
    tasks: dict[str, Doc]
    completed: StoryCompleted | None


def story_id_of(fact: Fact) -> str:
    return fact.task.story_id if isinstance(fact, BatchedTask) else fact.story_id  # type: ignore[attr-defined]


def expand(event: Event) -> list[Fact]:
    """The facts an event contributes: a BatchReady contributes one per task."""
    if isinstance(event, BatchReady):
        return [BatchedTask(event, task) for task in event.tasks]
    return [event]


def reduce_story(
    story_id: str,
    story: Doc | None,
    tasks: Mapping[str, Doc],
    facts: Iterable[Fact],
    *,
    count_scenes: SceneCounter,
) -> StoryView:
    """Apply ``facts`` of one story to its current documents; return the new documents."""
    story_doc = copy.deepcopy(story) if story is not None else new_story(story_id)
    task_docs = {key: copy.deepcopy(doc) for key, doc in tasks.items()}
    for fact in facts:
        _apply_story(story_doc, fact, count_scenes)
        task_id = task_id_of(fact)
        if task_id is not None:
            doc = task_docs.get(task_id)
            if doc is None:
                doc = task_docs[task_id] = new_task(task_id)
            _apply_task(doc, fact)
    for doc in task_docs.values():
        _finalize_task(doc, story_doc)
    completed = _finalize_story(story_doc, task_docs.values())
    return StoryView(story_doc, task_docs, completed)


def new_story(story_id: str) -> Doc:
    return {
        "_id": story_id, "account_id": None, "tier": None, "title": None, "task_type": None, "model": None,
        "status": StoryStatus.QUEUED.value, "error": None, "task_count": None,
        "counts": _counts(), "progress": 0.0, "submitted_at": None, "started_at": None,
        "finished_at": None, "callback_url": None, "idempotency_key": None, "outputs": [], "updated_at": 0,
        "_sub": None, "_tc_req": None, "_tc_split": None, "_split_error": None, "_cancel": None,
        "_completed_emitted": False, "_seq": 0, "_tasks": [], "_rejected": None,
    }  # fmt: skip


def new_task(task_id: str) -> Doc:
    story_id, _, index = task_id.rpartition(":")
    return {
        "_id": task_id, "story_id": story_id or None, "account_id": None, "tier": None, "pool": None,
        "task_type": None, "model": None, "scene_index": int(index) if index.isdigit() else None,
        "prompt": None, "status": TaskStatus.QUEUED.value, "batch_id": None, "consumer_id": None,
        "attempt": 0, "step": 0, "total_steps": 0, "queued_at": None, "batched_at": None,
        "started_at": None, "finished_at": None, "deadline": None, "outputs": [], "error": None,
        "simulated": False, "updated_at": 0,
        "_src": None, "_queued": None, "_batch": None, "_start": None, "_head": None, "_h": None, "_seq": 0,
    }  # fmt: skip


def task_id_of(fact: Fact) -> str | None:
    """The task a fact is about, or None for story-level facts."""
    if isinstance(fact, BatchedTask):
        return fact.task.task_id
    return getattr(fact, "task_id", None)


def _event_of(fact: Fact) -> Event | RejectedStory:
    return fact.batch if isinstance(fact, BatchedTask) else fact


def _apply_story(doc: Doc, fact: Fact, count_scenes: SceneCounter) -> None:
    event = _event_of(fact)
    doc["updated_at"] = max(doc["updated_at"], event.event_time)
    if not isinstance(fact, StoryCompleted):  # derived from this document: it must not move it
        doc["_seq"] = max(
            doc["_seq"], fact.task.sequence if isinstance(fact, BatchedTask) else event.sequence
        )
    if isinstance(fact, RejectedStory):
        if doc.get("_rejected") is None or [fact.event_time, fact.event_id] < doc["_rejected"][:2]:
            doc["_rejected"] = [fact.event_time, fact.event_id, fact.reason]
    elif isinstance(fact, StorySubmitted):
        key = [fact.event_time, fact.event_id]
        if doc["_sub"] is None or key < doc["_sub"]:
            doc["_sub"] = key
            doc.update(
                account_id=fact.account_id, tier=fact.tier.value, title=fact.title,
                task_type=fact.task_type.value, model=fact.model, submitted_at=fact.submitted_at,
                callback_url=fact.callback_url, idempotency_key=fact.idempotency_key,
            )  # fmt: skip
            try:
                doc["_tc_split"], doc["_split_error"] = count_scenes(fact), None
            except Exception as exc:  # noqa: BLE001 - a story the splitter cannot split fails with the reason
                code = (
                    getattr(exc, "code", type(exc).__name__)
                    if isinstance(exc, StreamsError)
                    else "split_failed"
                )
                doc["_tc_split"], doc["_split_error"] = 0, {"code": code, "message": str(exc)}
    elif isinstance(fact, TaskRequested):
        doc["_tc_req"] = max(doc["_tc_req"] or 0, fact.task_count)
        if doc["_sub"] is None:
            doc.update(account_id=fact.account_id, tier=fact.tier.value, task_type=fact.task_type.value,
                       model=fact.model)  # fmt: skip
    elif isinstance(fact, StoryCancelled):
        key = [fact.event_time, fact.event_id]
        if doc["_cancel"] is None or key < doc["_cancel"]:
            doc["_cancel"] = key
    elif isinstance(fact, StoryCompleted):
        doc["_completed_emitted"] = True
    if doc["account_id"] is None:
        account = fact.task.account_id if isinstance(fact, BatchedTask) else getattr(fact, "account_id", None)
        doc["account_id"] = account


def _apply_task(doc: Doc, fact: Fact) -> None:
    event = _event_of(fact)
    doc["updated_at"] = max(doc["updated_at"], event.event_time)
    if isinstance(fact, TaskRequested):
        _apply_requested(doc, fact)
    elif isinstance(fact, BatchedTask):
        _apply_batched(doc, fact)
    elif isinstance(fact, TaskStarted):
        _merge_start(doc, fact.attempt, fact.event_time)
        _offer_head(doc, [0, fact.attempt, _RUNNING], fact, TaskStatus.RUNNING,
                    consumer_id=fact.consumer_id, batch_id=fact.batch_id)  # fmt: skip
    elif isinstance(fact, TaskProgress):
        if [fact.step, fact.total_steps] > [doc["step"], doc["total_steps"]]:
            doc["step"], doc["total_steps"] = fact.step, fact.total_steps
        _offer_head(doc, [0, 0, _RUNNING], fact, TaskStatus.RUNNING,
                    consumer_id=fact.consumer_id, batch_id=fact.batch_id)  # fmt: skip
    elif isinstance(fact, TaskCompleted):
        outputs = [artifact.to_record() for artifact in fact.outputs]
        _offer_head(
            doc, [1, _COMPLETED, fact.attempt], fact, TaskStatus.COMPLETED, consumer_id=fact.consumer_id,
            batch_id=fact.batch_id, outputs=outputs, finished_at=fact.event_time,
            gpu_seconds=fact.gpu_seconds,
            simulated=any(o.uri.startswith(_SIMULATED_SCHEMES) for o in fact.outputs),
        )  # fmt: skip
    elif isinstance(fact, TaskFailed):
        error = {"error_class": fact.error_class, "message": fact.message, "retriable": fact.retriable}
        key = [0, fact.attempt, _RETRYING] if fact.retriable else [1, _FAILED, fact.attempt]
        _offer_head(doc, key, fact, TaskStatus.FAILED, consumer_id=fact.consumer_id, batch_id=fact.batch_id,
                    error=error, finished_at=fact.event_time)  # fmt: skip
    elif isinstance(fact, TaskExpired):
        _offer_head(doc, [1, _EXPIRED, 0], fact, TaskStatus.EXPIRED, finished_at=fact.event_time)
    attempt = getattr(fact.task if isinstance(fact, BatchedTask) else fact, "attempt", 0)
    doc["attempt"] = max(doc["attempt"], attempt)
    sequence = fact.task.sequence if isinstance(fact, BatchedTask) else event.sequence
    doc["_seq"] = max(doc["_seq"], sequence)


def _apply_requested(doc: Doc, event: TaskRequested) -> None:
    key = [2, -event.attempt, event.event_time, event.event_id]
    if doc["_src"] is None or key < doc["_src"]:
        doc["_src"] = key
        doc.update(
            story_id=event.story_id, account_id=event.account_id, tier=event.tier.value, pool=event.model,
            task_type=event.task_type.value, model=event.model, scene_index=event.scene_index,
            prompt=event.prompt, deadline=event.deadline,
        )  # fmt: skip
    # queued_at: the first request of the latest attempt.
    queued = doc["_queued"]
    later = queued is None or event.attempt > queued[0]
    if later or (event.attempt == queued[0] and event.event_time < queued[1]):
        doc["_queued"] = [event.attempt, event.event_time]
        doc["queued_at"] = event.event_time
    _offer_head(doc, [0, event.attempt, _QUEUED], event, TaskStatus.QUEUED)


def _apply_batched(doc: Doc, fact: BatchedTask) -> None:
    batch, task = fact.batch, fact.task
    # A TaskRequested (source 2) outranks a batch's copy of the task (source 3); keys sort ascending.
    key = [3, -task.attempt, batch.event_time, batch.event_id]
    if doc["_src"] is None or key < doc["_src"]:
        doc["_src"] = key
        doc.update(
            story_id=task.story_id, account_id=task.account_id, tier=batch.tier.value, pool=batch.pool,
            task_type=batch.task_type.value, model=batch.model, scene_index=task.scene_index,
            prompt=task.prompt, deadline=task.deadline,
        )  # fmt: skip
    # The batch a task runs in: highest attempt, then the earliest batch (a re-sent batch is the same).
    chosen = [-task.attempt, batch.event_time, batch.batch_id]
    if doc["_batch"] is None or chosen < doc["_batch"]:
        doc["_batch"] = chosen
    _offer_head(doc, [0, task.attempt, _BATCHED], batch, TaskStatus.BATCHED, batch_id=batch.batch_id,
                sequence=task.sequence)  # fmt: skip


def _merge_start(doc: Doc, attempt: int, started_at: int) -> None:
    current = doc["_start"]
    if current is None or attempt > current[0] or (attempt == current[0] and started_at < current[1]):
        doc["_start"] = [attempt, started_at]


def _offer_head(
    doc: Doc,
    rank: list[int],
    event: Event,
    status: TaskStatus,
    *,
    sequence: int | None = None,
    **payload: Any,
) -> None:
    key = [*rank, event.event_time, event.sequence if sequence is None else sequence, event.event_id]
    if doc["_head"] is not None and key <= doc["_head"]:
        return
    doc["_head"] = key
    doc["_h"] = {
        "status": status.value,
        "consumer_id": payload.get("consumer_id"),
        "batch_id": payload.get("batch_id"),
        "outputs": payload.get("outputs", []),
        "error": payload.get("error"),
        "finished_at": payload.get("finished_at"),
        "gpu_seconds": payload.get("gpu_seconds", 0.0),
        "simulated": payload.get("simulated", False),
    }


def _finalize_task(doc: Doc, story: Doc) -> None:
    head = doc["_h"] or {"status": TaskStatus.QUEUED.value, "consumer_id": None, "batch_id": None,
                         "outputs": [], "error": None, "finished_at": None, "simulated": False}  # fmt: skip
    final = doc["_head"] is not None and doc["_head"][0] == 1
    doc.update(status=head["status"], consumer_id=head["consumer_id"], outputs=head["outputs"],
               error=head["error"], finished_at=head["finished_at"], simulated=head["simulated"])  # fmt: skip
    doc["batch_id"] = head["batch_id"] or (doc["_batch"][2] if doc["_batch"] else None)
    doc["batched_at"] = doc["_batch"][1] if doc["_batch"] else None
    doc["started_at"] = doc["_start"][1] if doc["_start"] else None
    if story["_cancel"] is not None and not final:
        doc.update(status=TaskStatus.CANCELLED.value, finished_at=story["_cancel"][0], error=None)
    if doc["account_id"] is None:
        doc["account_id"] = story["account_id"]


def _finalize_story(doc: Doc, tasks: Iterable[Doc]) -> StoryCompleted | None:
    tasks = sorted(tasks, key=lambda t: (t["scene_index"] if t["scene_index"] is not None else -1, t["_id"]))
    requested = doc["_tc_req"]
    task_count = requested if requested is not None else doc["_tc_split"]
    rejected = doc.get("_rejected")
    if rejected is not None and doc["_sub"] is None and requested is None:
        # Only a submission that broke the contract was seen: it ends here, failed, with the reason.
        task_count, doc["_split_error"] = 0, {"code": "invalid_event", "message": rejected[2]}
        doc["_seq"] = max(doc["_seq"], 0)
    doc["task_count"] = task_count
    doc["error"] = doc["_split_error"] if requested is None else None
    counts = _counts()
    progress = 0.0
    for task in tasks:
        status = task["status"]
        group = TaskStatus.QUEUED.value if status == TaskStatus.BATCHED.value else status
        counts[group] += 1
        if status in TERMINAL_TASK_STATUSES:
            progress += 1.0
        elif status == TaskStatus.RUNNING.value and task["total_steps"]:
            progress += min(task["step"] / task["total_steps"], 1.0)
    cancelled = doc["_cancel"] is not None
    unseen = max((task_count or 0) - len(tasks), 0)
    counts[TaskStatus.CANCELLED.value if cancelled else TaskStatus.QUEUED.value] += unseen
    if cancelled:
        progress += unseen
    terminal = sum(counts[s.value] for s in TERMINAL_TASK_STATUSES)
    all_terminal = task_count is not None and terminal >= task_count
    doc["counts"] = counts
    doc["_tasks"] = [task["_id"] for task in tasks]  # so the store loads them by _id
    if task_count == 0:
        doc["progress"] = 1.0
    else:
        doc["progress"] = round(min(progress / task_count, 1.0), 4) if task_count else 0.0
    started = [t["started_at"] for t in tasks if t["started_at"] is not None]
    doc["started_at"] = min(started) if started else None
    finished = [t["finished_at"] for t in tasks if t["finished_at"] is not None]
    if cancelled:
        status, finished_at = StoryStatus.CANCELLED, doc["_cancel"][0]
    elif doc["error"] is not None:
        first_seen = doc["_sub"] or doc.get("_rejected")
        status, finished_at = StoryStatus.FAILED, first_seen[0] if first_seen else doc["updated_at"]
    elif all_terminal:
        done = counts[TaskStatus.COMPLETED.value] >= (task_count or 0)
        status = StoryStatus.COMPLETED if done else StoryStatus.FAILED
        finished_at = max(finished) if finished else doc["updated_at"]
    elif started or terminal:
        status, finished_at = StoryStatus.RUNNING, None
    else:
        status, finished_at = StoryStatus.QUEUED, None
    doc["status"], doc["finished_at"] = status.value, finished_at
    doc["outputs"] = [
        {"task_id": t["_id"], "scene_index": t["scene_index"], "uri": o["uri"], "media_type": o["media_type"]}
        for t in tasks
        if t["status"] == TaskStatus.COMPLETED.value
        for o in t["outputs"]
    ]
    open_story = status in (StoryStatus.RUNNING, StoryStatus.QUEUED)
    if open_story or doc["_completed_emitted"] or not doc["account_id"]:
        return None
    return StoryCompleted(
        event_id=derived_event_id("StoryCompleted", doc["_id"]),
        event_time=finished_at if finished_at is not None else doc["updated_at"],
        sequence=doc["_seq"] + 1,
        story_id=doc["_id"],
        account_id=doc["account_id"],
        tasks_completed=counts[TaskStatus.COMPLETED.value],
        tasks_failed=counts[TaskStatus.FAILED.value],
        tasks_expired=counts[TaskStatus.EXPIRED.value],
        gpu_seconds=round(sum((t["_h"] or {}).get("gpu_seconds", 0.0) for t in tasks), 6),
    )


def _counts() -> dict[str, int]:
    return {s: 0 for s in ("queued", "running", "completed", "failed", "expired", "cancelled")}
