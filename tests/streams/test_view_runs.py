"""A story's runs in the job view: a retry reopens what its first run ended, and it ends again."""

from __future__ import annotations

import copy
import dataclasses
import random

import pytest

from schemas.contract import ATTEMPTS_PER_RETRY, attempt_within_run, first_attempt, retry_of
from schemas.events import TaskRequested
from schemas.view import StoryStatus, TaskStatus
from streams.batching import make_batch
from streams.event_ids import derived_event_id
from streams.splitting import split
from streams.view import reduce_story
from streams.view_facts import expand
from streams.view_runs import mark_emitted
from tests.streams.factories import POLICY, T0, completed, expired, failed, started, story
from tests.streams.test_view import count_scenes

RETRY_AT = T0 + 60_000


def first_run():
    """Three scenes: 0 and 1 complete, 2 fails for good after its retries (attempt 3)."""
    submitted = story("s1", n_scenes=3)
    tasks = split(submitted, POLICY, now=T0 + 10)
    batch = make_batch(tasks, now=T0 + 20)
    events = [submitted, *tasks, batch]
    events += [started("s1", i, batch.batch_id, T0 + 30 + i) for i in range(3)]
    events += [completed("s1", 0, batch.batch_id, T0 + 900), completed("s1", 1, batch.batch_id, T0 + 950)]
    events += [failed("s1", 2, T0 + 990, attempt=3)]
    return tasks, events


def retry_request(task: TaskRequested, retry: int = 1) -> TaskRequested:
    """What the gateway's retry publishes for a task: the same request, the next run's first attempt."""
    attempt = first_attempt(retry)
    return dataclasses.replace(
        task,
        event_id=derived_event_id("TaskRequested", task.task_id, attempt),
        event_time=RETRY_AT,
        sequence=20,
        attempt=attempt,
        deadline=RETRY_AT + 300_000,
    )


def second_run(task: TaskRequested):
    again = retry_request(task)
    batch = make_batch([again], now=RETRY_AT + 10)
    done = dataclasses.replace(
        completed("s1", 2, batch.batch_id, RETRY_AT + 800), event_id="co-s1-2-retry1".ljust(32, "0"),
        attempt=again.attempt, sequence=23,
    )  # fmt: skip
    return [again, batch, started("s1", 2, batch.batch_id, RETRY_AT + 20, attempt=again.attempt), done]


def facts_of(events):
    return [fact for event in events for fact in expand(event)]


def reduce_all(facts, flushes=()):
    """Reduce in flushes like the materializer, marking what it emits, and return (story, tasks, emitted)."""
    story_doc, task_docs, emitted, start = None, {}, [], 0
    for end in [*flushes, len(facts)]:
        view = reduce_story("s1", story_doc, task_docs, facts[start:end], count_scenes=count_scenes)
        story_doc, task_docs = view.story, view.tasks
        if view.completed is not None:
            emitted.append(view.completed)
            story_doc = copy.deepcopy(story_doc)
            mark_emitted(story_doc, view.completed)
        start = end
    return story_doc, task_docs, emitted


def test_attempt_numbers_name_their_run():
    assert [retry_of(a) for a in (0, 3, 9, 10, 19, 20)] == [0, 0, 0, 1, 1, 2]
    assert first_attempt(2) == 2 * ATTEMPTS_PER_RETRY
    # The GPU consumers' retries count up inside a run and never spill into the next one.
    assert (
        attempt_within_run(10, 3) == 13
        and attempt_within_run(10, 25) == 19
        and attempt_within_run(3, 20) == 9
    )


def test_a_retry_reopens_the_failed_task_and_the_story_ends_again():
    tasks, events = first_run()
    story_doc, task_docs, emitted = reduce_all(facts_of(events))
    assert story_doc["status"] == StoryStatus.FAILED and [e.retry for e in emitted] == [0]
    assert emitted[0].event_id == derived_event_id("StoryCompleted", "s1")  # as before retries

    reopened = reduce_story(
        "s1", story_doc, task_docs, facts_of([retry_request(tasks[2])]), count_scenes=count_scenes
    )
    assert reopened.tasks["s1:2"]["status"] == TaskStatus.QUEUED
    assert reopened.tasks["s1:2"]["deadline"] == RETRY_AT + 300_000
    assert reopened.story["status"] == StoryStatus.RUNNING and reopened.story["finished_at"] is None
    assert reopened.story["retry"] == 1 and reopened.completed is None

    story_doc, task_docs, emitted = reduce_all(facts_of([*events, *emitted, *second_run(tasks[2])]))
    assert story_doc["status"] == StoryStatus.COMPLETED and task_docs["s1:2"]["attempt"] == 10
    assert [e.retry for e in emitted] == [1] and emitted[0].tasks_completed == 3
    assert emitted[0].event_id == derived_event_id("StoryCompleted", "s1", 1)
    assert [o["scene_index"] for o in story_doc["outputs"]] == [0, 1, 2]


def test_the_story_shows_each_run_with_how_it_ended():
    tasks, events = first_run()
    *_, first_end = reduce_all(facts_of(events))
    run_two = second_run(tasks[2])
    *_, second_end = reduce_all(facts_of([*events, *first_end, *run_two]))
    story_doc, _, emitted = reduce_all(facts_of([*events, *first_end, *run_two, *second_end]))
    assert emitted == []  # both runs' StoryCompleted were read back: nothing is due
    assert story_doc["attempts"] == [
        {"retry": 0, "requested_at": story("s1").submitted_at, "tasks": 3, "ended_at": T0 + 990,
         "tasks_completed": 2, "tasks_failed": 1, "tasks_expired": 0},
        {"retry": 1, "requested_at": RETRY_AT, "tasks": 1, "ended_at": RETRY_AT + 800,
         "tasks_completed": 3, "tasks_failed": 0, "tasks_expired": 0},
    ]  # fmt: skip


@pytest.mark.parametrize("seed", range(25))
def test_runs_converge_whatever_the_order_duplicates_and_flushes(seed):
    tasks, events = first_run()
    *_, first_end = reduce_all(facts_of(events))
    run_two = second_run(tasks[2])
    *_, second_end = reduce_all(facts_of([*events, *first_end, *run_two]))
    facts = facts_of([*events, *first_end, *run_two, *second_end])
    expected = reduce_all(facts)
    rng = random.Random(seed)
    shuffled = facts + rng.sample(facts, k=len(facts) // 2)
    rng.shuffle(shuffled)
    flushes = sorted(rng.sample(range(1, len(shuffled)), k=rng.randint(0, 5)))
    story_doc, task_docs, emitted = reduce_all(shuffled, flushes)
    assert (story_doc, task_docs) == expected[:2]
    # A flush may see the story end in one run before it sees the retry; never the same run twice.
    assert len({e.retry for e in emitted}) == len(emitted)


def test_an_older_runs_expiry_does_not_end_the_retry():
    tasks, events = first_run()
    late = dataclasses.replace(expired("s1", 2, RETRY_AT + 5), attempt=0)
    view = reduce_all(facts_of([*events, retry_request(tasks[2]), late]))
    assert view[1]["s1:2"]["status"] == TaskStatus.QUEUED
    own = dataclasses.replace(
        expired("s1", 2, RETRY_AT + 400_000), event_id="ex-retry".ljust(32, "0"), attempt=10
    )
    story_doc, task_docs, emitted = reduce_all(facts_of([*events, retry_request(tasks[2]), late, own]))
    assert task_docs["s1:2"]["status"] == TaskStatus.EXPIRED and story_doc["status"] == StoryStatus.FAILED


def test_within_one_run_a_final_failure_still_beats_a_later_attempts_open_event():
    # A redelivered batch can start attempt 2 after the run already failed at attempt 1: still failed.
    _, events = first_run()
    redo = started("s1", 2, "b-redo", T0 + 5000, attempt=2)
    _, task_docs, _ = reduce_all(facts_of([*events, redo]))
    assert task_docs["s1:2"]["status"] == TaskStatus.FAILED


def test_a_completion_of_any_run_beats_a_later_runs_request():
    tasks, events = first_run()
    _, task_docs, _ = reduce_all(facts_of([*events, retry_request(tasks[0])]))
    assert task_docs["s1:0"]["status"] == TaskStatus.COMPLETED


def test_a_document_stored_before_retries_keeps_its_run_zero_ending():
    _, events = first_run()
    story_doc, task_docs, _ = reduce_all(facts_of(events))
    legacy = {k: v for k, v in story_doc.items() if k not in ("_emitted", "_runs", "_ends")}
    assert legacy["_completed_emitted"] is True
    again = reduce_story("s1", legacy, task_docs, [], count_scenes=count_scenes)  # type: ignore[arg-type]
    assert again.completed is None


def test_the_task_keeps_what_a_retry_needs_to_request_it_again():
    tasks, events = first_run()
    _, task_docs, _ = reduce_all(facts_of(events))
    assert task_docs["s1:2"]["params"] == tasks[2].params.to_record()
    assert task_docs["s1:2"]["input"] is None
