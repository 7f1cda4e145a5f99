"""The job view's reduction: events in, MongoDB documents out (pure, no I/O).

Every document is a function of the *set* of events applied to it, never of their order or count, so
duplicated, replayed and out-of-order events converge to the same document, and dropping the view and
replaying the topics rebuilds it identically. Three kinds of merge make that so:

* static fields (prompt, account, ...) come from the highest-priority source (TaskRequested over a
  batch's copy, :class:`~streams.view_doc.Source`), ties broken by the smallest ``(event_time, event_id)``;
* monotone fields merge with ``min`` or ``max`` (queued_at, started_at, step, updated_at);
* the task's status comes from its *head*: the event with the greatest key. A completion beats
  everything; then the later run of the story (a ``POST /v1/stories/{id}/retry`` requests its failed and
  expired tasks again with attempts of the next run, :func:`schemas.contract.retry_of`, and so reopens
  them); within a run, final outcomes (failed for good > expired) beat everything open, otherwise the
  higher attempt wins, then the later phase (queued < batched < running < failed-but-retriable), then
  ``(event_time, sequence, event_id)``. The ranks are named in :mod:`streams.view_doc`; a story ends
  once per run (:mod:`streams.view_runs`).

A cancelled story turns its tasks without a final outcome into ``cancelled``; a clip that completes
anyway stays completed. Story fields (counts, progress, status, outputs, times) are derived from the
story's task documents every time. The documents' types, and the bookkeeping fields (names starting
with ``_``, which readers ignore), are in :mod:`streams.view_doc`.

The end-to-end probe's stories (:func:`schemas.ids.is_probe_story`) are never the job view's: the
materializer takes them apart with :func:`apart_probes`, reduces them in memory with the same
:func:`reduce_story` (so their StoryCompleted comes exactly as a user's would) and writes nothing.

Pure logic, named for what it computes; its I/O shell is :mod:`streams.view_loop` (the materializer),
which stores documents through :mod:`streams.view_store`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from schemas.contract import retry_of
from schemas.events import (
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
from schemas.ids import is_probe_story
from schemas.view import TERMINAL_TASK_STATUSES, StoryStatus, TaskStatus
from streams.exceptions import StreamsError
from streams.view_doc import (
    AttemptTime,
    BatchChoice,
    Head,
    HeadKey,
    Outcome,
    Phase,
    Rank,
    Rejection,
    Seen,
    Source,
    SourceKey,
    StoryDoc,
    StoryError,
    TaskDoc,
    TaskSource,
    batch_choice,
    cancellation,
    emitted_runs,
    empty_counts,
    empty_head,
    final_rank,
    head_key,
    new_story,
    new_task,
    open_rank,
    queued,
    rejection,
    source,
    start,
    submission,
)
from streams.view_facts import BatchedTask, Fact, RejectedStory, event_of, task_id_of
from streams.view_runs import add_end, add_run, completed_event_id, finalize_runs, mark_emitted

# How many scenes a submitted story yields; raises a StreamsError (with ``code``) when it yields none.
SceneCounter = Callable[[StorySubmitted], int]

_SIMULATED_SCHEMES = ("sim://", "simulated://")


@dataclass(frozen=True, slots=True)
class StoryView:
    """A story's documents after reduction, and the StoryCompleted to emit, if it just became due."""

    story: StoryDoc
    tasks: dict[str, TaskDoc]
    completed: StoryCompleted | None


def apart_probes(
    facts: Mapping[str, list[Fact]],
) -> tuple[dict[str, list[Fact]], dict[str, list[Fact]]]:
    """Facts by story id split into (users' stories, the end-to-end probe's stories)."""
    users: dict[str, list[Fact]] = {}
    probes: dict[str, list[Fact]] = {}
    for story_id, story_facts in facts.items():
        (probes if is_probe_story(story_id) else users)[story_id] = story_facts
    return users, probes


def reduce_story(
    story_id: str,
    story: StoryDoc | None,
    tasks: Mapping[str, TaskDoc],
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


def _apply_story(doc: StoryDoc, fact: Fact, count_scenes: SceneCounter) -> None:
    event = event_of(fact)
    doc["updated_at"] = max(doc["updated_at"], event.event_time)
    if not isinstance(fact, StoryCompleted):  # derived from this document: it must not move it
        doc["_seq"] = max(
            doc["_seq"], fact.task.sequence if isinstance(fact, BatchedTask) else event.sequence
        )
    if isinstance(fact, RejectedStory):
        rejected = rejection(doc)
        if rejected is None or Seen(fact.event_time, fact.event_id) < rejected.seen:
            doc["_rejected"] = list(Rejection(fact.event_time, fact.event_id, fact.reason))
    elif isinstance(fact, StorySubmitted):
        key = Seen(fact.event_time, fact.event_id)
        chosen = submission(doc)
        if chosen is None or key < chosen:
            doc["_sub"] = list(key)
            doc.update({
                "account_id": fact.account_id, "tier": fact.tier.value, "title": fact.title,
                "task_type": fact.task_type.value, "model": fact.model, "submitted_at": fact.submitted_at,
                "callback_url": fact.callback_url, "webhook_events": list(fact.webhook_events),
                "idempotency_key": fact.idempotency_key,
            })  # fmt: skip
            doc["_tc_split"], doc["_split_error"] = _split_count(fact, count_scenes)
    elif isinstance(fact, TaskRequested):
        doc["_tc_req"] = max(doc["_tc_req"] or 0, fact.task_count)
        if retry_of(fact.attempt) > 0:
            add_run(doc, retry_of(fact.attempt), fact.event_time, fact.task_id)
        if doc["_sub"] is None:
            doc.update({"account_id": fact.account_id, "tier": fact.tier.value,
                        "task_type": fact.task_type.value, "model": fact.model})  # fmt: skip
    elif isinstance(fact, StoryCancelled):
        key = Seen(fact.event_time, fact.event_id)
        chosen = cancellation(doc)
        if chosen is None or key < chosen:
            doc["_cancel"] = list(key)
    elif isinstance(fact, StoryCompleted):
        mark_emitted(doc, fact)
        add_end(doc, fact)
    if doc["account_id"] is None:
        account = fact.task.account_id if isinstance(fact, BatchedTask) else getattr(fact, "account_id", None)
        doc["account_id"] = account


def _split_count(story: StorySubmitted, count_scenes: SceneCounter) -> tuple[int, StoryError | None]:
    """How many tasks our own split gives the story; a story it cannot split fails with the reason."""
    try:
        return count_scenes(story), None
    except Exception as exc:  # noqa: BLE001 - a story the splitter cannot split fails with the reason
        code = getattr(exc, "code", type(exc).__name__) if isinstance(exc, StreamsError) else "split_failed"
        return 0, {"code": code, "message": str(exc)}


def _apply_task(doc: TaskDoc, fact: Fact) -> None:
    event = event_of(fact)
    doc["updated_at"] = max(doc["updated_at"], event.event_time)
    if isinstance(fact, TaskRequested):
        _apply_requested(doc, fact)
    elif isinstance(fact, BatchedTask):
        _apply_batched(doc, fact)
    elif isinstance(fact, TaskStarted):
        _merge_start(doc, fact.attempt, fact.event_time)
        _offer_head(doc, open_rank(fact.attempt, Phase.RUNNING), fact, TaskStatus.RUNNING,
                    consumer_id=fact.consumer_id, batch_id=fact.batch_id)  # fmt: skip
    elif isinstance(fact, TaskProgress):
        if [fact.step, fact.total_steps] > [doc["step"], doc["total_steps"]]:
            doc["step"], doc["total_steps"] = fact.step, fact.total_steps
        _offer_head(doc, open_rank(0, Phase.RUNNING), fact, TaskStatus.RUNNING,
                    consumer_id=fact.consumer_id, batch_id=fact.batch_id)  # fmt: skip
    elif isinstance(fact, TaskCompleted):
        outputs = [artifact.to_record() for artifact in fact.outputs]
        _offer_head(
            doc, final_rank(Outcome.COMPLETED, fact.attempt), fact, TaskStatus.COMPLETED,
            consumer_id=fact.consumer_id, batch_id=fact.batch_id, outputs=outputs,
            finished_at=fact.event_time, gpu_seconds=fact.gpu_seconds,
            simulated=any(o.uri.startswith(_SIMULATED_SCHEMES) for o in fact.outputs),
        )  # fmt: skip
    elif isinstance(fact, TaskFailed):
        error = {"error_class": fact.error_class, "message": fact.message, "retriable": fact.retriable}
        if fact.retriable:
            rank = open_rank(fact.attempt, Phase.RETRYING)
        else:
            rank = final_rank(Outcome.FAILED, fact.attempt)
        _offer_head(doc, rank, fact, TaskStatus.FAILED, consumer_id=fact.consumer_id, batch_id=fact.batch_id,
                    error=error, finished_at=fact.event_time)  # fmt: skip
    elif isinstance(fact, TaskExpired):
        expiry = final_rank(Outcome.EXPIRED, fact.attempt)
        _offer_head(doc, expiry, fact, TaskStatus.EXPIRED, finished_at=fact.event_time)
    attempt = getattr(fact.task if isinstance(fact, BatchedTask) else fact, "attempt", 0)
    doc["attempt"] = max(doc["attempt"], attempt)
    sequence = fact.task.sequence if isinstance(fact, BatchedTask) else event.sequence
    doc["_seq"] = max(doc["_seq"], sequence)


def _offer_source(doc: TaskDoc, key: SourceKey, fields: TaskSource) -> None:
    """Take the static fields from the best source seen: the smallest :class:`SourceKey`."""
    current = source(doc)
    if current is None or key < current:
        doc["_src"] = list(key)
        doc.update(fields)


def _apply_requested(doc: TaskDoc, event: TaskRequested) -> None:
    _offer_source(
        doc, SourceKey(int(Source.REQUESTED), -event.attempt, event.event_time, event.event_id),
        {"story_id": event.story_id, "account_id": event.account_id, "tier": event.tier.value,
         "pool": event.model, "task_type": event.task_type.value, "model": event.model,
         "scene_index": event.scene_index, "prompt": event.prompt, "deadline": event.deadline,
         "params": event.params.to_record(), "input": event.input.to_record() if event.input else None},
    )  # fmt: skip
    # queued_at: the first request of the latest attempt.
    current = queued(doc)
    if current is None or current.replaced_by(event.attempt, event.event_time):
        doc["_queued"] = list(AttemptTime(event.attempt, event.event_time))
        doc["queued_at"] = event.event_time
    _offer_head(doc, open_rank(event.attempt, Phase.QUEUED), event, TaskStatus.QUEUED)


def _apply_batched(doc: TaskDoc, fact: BatchedTask) -> None:
    batch, task = fact.batch, fact.task
    _offer_source(
        doc, SourceKey(int(Source.BATCH), -task.attempt, batch.event_time, batch.event_id),
        {"story_id": task.story_id, "account_id": task.account_id, "tier": batch.tier.value,
         "pool": batch.pool, "task_type": batch.task_type.value, "model": batch.model,
         "scene_index": task.scene_index, "prompt": task.prompt, "deadline": task.deadline,
         "params": task.params.to_record(), "input": task.input.to_record() if task.input else None},
    )  # fmt: skip
    # The batch a task runs in: highest attempt, then the earliest batch (a re-sent batch is the same).
    chosen = BatchChoice(-task.attempt, batch.event_time, batch.batch_id)
    current = batch_choice(doc)
    if current is None or chosen < current:
        doc["_batch"] = list(chosen)
    _offer_head(doc, open_rank(task.attempt, Phase.BATCHED), batch, TaskStatus.BATCHED,
                batch_id=batch.batch_id, sequence=task.sequence)  # fmt: skip


def _merge_start(doc: TaskDoc, attempt: int, started_at: int) -> None:
    current = start(doc)
    if current is None or current.replaced_by(attempt, started_at):
        doc["_start"] = list(AttemptTime(attempt, started_at))


def _offer_head(
    doc: TaskDoc,
    rank: Rank,
    event: Event,
    status: TaskStatus,
    *,
    sequence: int | None = None,
    **payload: Any,
) -> None:
    key = HeadKey(*rank, event.event_time, event.sequence if sequence is None else sequence, event.event_id)
    current = head_key(doc)
    if current is not None and key.order() <= current.order():
        return
    doc["_head"] = list(key)
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


def _finalize_task(doc: TaskDoc, story: StoryDoc) -> None:
    head: Head = doc["_h"] or empty_head()
    current = head_key(doc)
    final = current is not None and current.is_final
    doc.update({"status": head["status"], "consumer_id": head["consumer_id"], "outputs": head["outputs"],
                "error": head["error"], "finished_at": head["finished_at"],
                "simulated": head["simulated"]})  # fmt: skip
    chosen, started = batch_choice(doc), start(doc)
    doc["batch_id"] = head["batch_id"] or (chosen.batch_id if chosen else None)
    doc["batched_at"] = chosen.batched_at if chosen else None
    doc["started_at"] = started.at if started else None
    cancelled = cancellation(story)
    if cancelled is not None and not final:
        doc.update({"status": TaskStatus.CANCELLED.value, "finished_at": cancelled.event_time, "error": None})
    if doc["account_id"] is None:
        doc["account_id"] = story["account_id"]


def _finalize_story(doc: StoryDoc, tasks: Iterable[TaskDoc]) -> StoryCompleted | None:
    tasks = sorted(tasks, key=lambda t: (t["scene_index"] if t["scene_index"] is not None else -1, t["_id"]))
    requested = doc["_tc_req"]
    task_count = requested if requested is not None else doc["_tc_split"]
    rejected = rejection(doc)
    if rejected is not None and doc["_sub"] is None and requested is None:
        # Only a submission that broke the contract was seen: it ends here, failed, with the reason.
        task_count, doc["_split_error"] = 0, {"code": "invalid_event", "message": rejected.reason}
        doc["_seq"] = max(doc["_seq"], 0)
    doc["task_count"] = task_count
    doc["error"] = doc["_split_error"] if requested is None else None
    counts = empty_counts()
    progress = 0.0
    for task in tasks:
        status = task["status"]
        group = TaskStatus.QUEUED.value if status == TaskStatus.BATCHED.value else status
        counts[group] += 1
        if status in TERMINAL_TASK_STATUSES:
            progress += 1.0
        elif status == TaskStatus.RUNNING.value and task["total_steps"]:
            progress += min(task["step"] / task["total_steps"], 1.0)
    cancelled = cancellation(doc)
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
    finished_at: int | None
    if cancelled:
        status, finished_at = StoryStatus.CANCELLED, cancelled.event_time
    elif doc["error"] is not None:
        first_seen = submission(doc) or (rejected.seen if rejected else None)
        status, finished_at = StoryStatus.FAILED, first_seen.event_time if first_seen else doc["updated_at"]
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
    retry = finalize_runs(doc, tasks)
    open_story = status in (StoryStatus.RUNNING, StoryStatus.QUEUED)
    if open_story or retry in emitted_runs(doc) or not doc["account_id"]:
        return None
    return StoryCompleted(
        event_id=completed_event_id(doc["_id"], retry),
        event_time=finished_at if finished_at is not None else doc["updated_at"],
        sequence=doc["_seq"] + 1,
        story_id=doc["_id"],
        account_id=doc["account_id"],
        tasks_completed=counts[TaskStatus.COMPLETED.value],
        tasks_failed=counts[TaskStatus.FAILED.value],
        tasks_expired=counts[TaskStatus.EXPIRED.value],
        gpu_seconds=round(sum((t["_h"] or empty_head()).get("gpu_seconds", 0.0) for t in tasks), 6),
        retry=retry,
    )
