"""A story's runs in the job view: its first and each retry, and when each ended (pure, no I/O).

A ``POST /v1/stories/{id}/retry`` requests the failed and expired tasks of a story again with the
attempts of the next run (:func:`schemas.contract.retry_of`); the materializer then emits one
StoryCompleted per run (``retry``). The story document keeps, for each run, its first TaskRequested
and task ids (``_runs``), the StoryCompleted read back (``_ends``) and which runs' StoryCompleted were
produced (``_emitted``); its public ``attempts`` summarise them. Every merge is a set function
(earliest time, union of ids, smallest ``(event_time, event_id)``), like the rest of the reduction
(:mod:`streams.view`).
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.contract import retry_of
from schemas.events import StoryCompleted
from streams.event_ids import derived_event_id
from streams.view_doc import RunEnd, RunStart, RunSummary, StoryDoc, TaskDoc, emitted_runs, ends, runs


def finalize_runs(doc: StoryDoc, tasks: Sequence[TaskDoc]) -> int:
    """Set the story's ``retry`` (its latest run) and ``attempts``; return the latest run."""
    retry = max([0, *(run.retry for run in runs(doc)), *(retry_of(task["attempt"]) for task in tasks)])
    doc["retry"] = retry
    doc["attempts"] = attempts(doc, retry)
    return retry


def completed_event_id(story_id: str, retry: int) -> str:
    """The StoryCompleted id of a run; run 0's is the id it had before retries, so replays stay duplicates."""
    parts = (story_id,) if retry == 0 else (story_id, retry)
    return derived_event_id("StoryCompleted", *parts)


def mark_emitted(doc: StoryDoc, event: StoryCompleted) -> None:
    """Note that the StoryCompleted of ``event``'s run was produced (or read back): it is not due again."""
    doc["_completed_emitted"] = True
    doc["_emitted"] = sorted(emitted_runs(doc) | {event.retry})


def add_run(doc: StoryDoc, retry: int, requested_at: int, task_id: str) -> None:
    by_retry = {run.retry: run for run in runs(doc)}
    run = by_retry.get(retry)
    if run is None:
        run = RunStart(retry, requested_at, [task_id])
    else:
        run = RunStart(retry, min(run.requested_at, requested_at), sorted({*run.task_ids, task_id}))
    by_retry[retry] = run
    doc["_runs"] = [by_retry[key]._asdict() for key in sorted(by_retry)]


def add_end(doc: StoryDoc, event: StoryCompleted) -> None:
    by_retry = {end.retry: end for end in ends(doc)}
    end = RunEnd(event.retry, event.event_time, event.event_id, event.tasks_completed, event.tasks_failed,
                 event.tasks_expired)  # fmt: skip
    current = by_retry.get(event.retry)
    if current is None or (end.event_time, end.event_id) < (current.event_time, current.event_id):
        by_retry[event.retry] = end
    doc["_ends"] = [by_retry[key]._asdict() for key in sorted(by_retry)]


def attempts(doc: StoryDoc, retry: int) -> list[RunSummary]:
    """The story's runs, oldest first: the first from its submission, the others from their retries."""
    started = {run.retry: run for run in runs(doc)}
    ended = {end.retry: end for end in ends(doc)}
    summaries: list[RunSummary] = []
    for number in range(retry + 1):
        run, end = started.get(number), ended.get(number)
        if number == 0:
            requested_at, tasks = doc["submitted_at"], doc["task_count"]
        else:
            requested_at = run.requested_at if run else None
            tasks = len(run.task_ids) if run else None
        summaries.append({
            "retry": number, "requested_at": requested_at, "tasks": tasks,
            "ended_at": end.event_time if end else None,
            "tasks_completed": end.tasks_completed if end else None,
            "tasks_failed": end.tasks_failed if end else None,
            "tasks_expired": end.tasks_expired if end else None,
        })  # fmt: skip
    return summaries
