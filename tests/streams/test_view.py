from __future__ import annotations

import copy
import random

import pytest

from schemas.view import StoryStatus, TaskStatus
from streams.batching import make_batch
from streams.exceptions import StreamsError
from streams.splitting import plan_scenes, split
from streams.view import reduce_story
from streams.view_facts import expand
from streams.view_runs import mark_emitted
from tests.streams.factories import (
    POLICY,
    T0,
    cancelled,
    completed,
    expired,
    failed,
    progress,
    started,
    story,
)


def count_scenes(submitted) -> int:
    return len(plan_scenes(submitted, POLICY))


def reduce_in_flushes(facts, flushes: list[int]):
    """Apply facts in consecutive flushes, as the materializer does, carrying documents between them."""
    story_doc, emitted = None, []
    task_docs: dict = {}
    start = 0
    for end in [*flushes, len(facts)]:
        view = reduce_story("s1", story_doc, task_docs, facts[start:end], count_scenes=count_scenes)
        story_doc, task_docs = view.story, view.tasks
        if view.completed is not None:
            emitted.append(view.completed)
            story_doc = copy.deepcopy(story_doc)
            mark_emitted(story_doc, view.completed)
        start = end
    return story_doc, task_docs, emitted


def lifecycle():
    submitted = story("s1", n_scenes=3)
    tasks = split(submitted, POLICY, now=T0 + 10)
    batch = make_batch(tasks[:2], now=T0 + 20)
    late = make_batch(tasks[2:], now=T0 + 5020)
    events = [submitted, *tasks, batch, late]
    events += [started("s1", 0, batch.batch_id, T0 + 30), progress("s1", 0, batch.batch_id, T0 + 40, 15)]
    events += [completed("s1", 0, batch.batch_id, T0 + 900), started("s1", 1, batch.batch_id, T0 + 31)]
    events += [failed("s1", 1, T0 + 50, retriable=True), started("s1", 1, batch.batch_id, T0 + 60, attempt=1)]
    events += [completed("s1", 1, batch.batch_id, T0 + 950), expired("s1", 2, T0 + 6000)]
    return [fact for event in events for fact in expand(event)]


def test_a_story_lifecycle_reduces_to_the_documented_shape():
    story_doc, tasks, emitted = reduce_in_flushes(lifecycle(), [])
    assert story_doc["status"] == StoryStatus.FAILED  # one task expired
    assert story_doc["counts"] == {"queued": 0, "running": 0, "completed": 2, "failed": 0, "expired": 1,
                                   "cancelled": 0}  # fmt: skip
    assert story_doc["progress"] == 1.0 and story_doc["task_count"] == 3
    assert story_doc["started_at"] == T0 + 30 and story_doc["finished_at"] == T0 + 6000
    assert [o["scene_index"] for o in story_doc["outputs"]] == [0, 1]
    first = tasks["s1:0"]
    assert first["status"] == TaskStatus.COMPLETED and first["step"] == 15 and first["queued_at"] == T0 + 10
    assert (
        first["batched_at"] == T0 + 20 and first["started_at"] == T0 + 30 and first["finished_at"] == T0 + 900
    )
    assert (
        first["outputs"][0]["uri"].endswith("/0.mp4")
        and first["error"] is None
        and first["pool"] == "default"
    )
    assert tasks["s1:1"]["attempt"] == 1 and tasks["s1:1"]["status"] == TaskStatus.COMPLETED
    assert tasks["s1:2"]["status"] == TaskStatus.EXPIRED
    assert len(emitted) == 1 and emitted[0].tasks_completed == 2 and emitted[0].tasks_expired == 1
    public = {k for k in first if not k.startswith("_")}
    assert public == {
        "story_id", "account_id", "tier", "pool", "task_type", "model", "scene_index", "prompt", "status",
        "batch_id", "consumer_id", "attempt", "step", "total_steps", "queued_at", "batched_at", "started_at",
        "finished_at", "deadline", "outputs", "error", "simulated", "updated_at", "params", "input",
    }  # fmt: skip


@pytest.mark.parametrize("seed", range(40))
def test_permuted_duplicated_and_flushed_events_converge(seed):
    facts = lifecycle()
    expected = reduce_in_flushes(facts, [])
    rng = random.Random(seed)
    shuffled = facts + rng.sample(facts, k=len(facts) // 2)  # duplicates
    rng.shuffle(shuffled)
    flushes = sorted(rng.sample(range(1, len(shuffled)), k=rng.randint(0, 6)))
    story_doc, tasks, emitted = reduce_in_flushes(shuffled, flushes)
    assert story_doc == expected[0]
    assert tasks == expected[1]
    assert len(emitted) <= 1


def test_a_cancelled_story_cancels_open_tasks_but_keeps_finished_clips():
    facts = lifecycle()[:9]  # submitted, 3 requested, 3 batched, task 0 started and progressing
    batch_id = facts[4].batch.batch_id
    facts += [cancelled("s1", T0 + 100), *expand(completed("s1", 0, batch_id, T0 + 200))]
    for seed in range(10):
        random.Random(seed).shuffle(facts)
        story_doc, tasks, emitted = reduce_in_flushes(facts, [3])
        assert story_doc["status"] == StoryStatus.CANCELLED and story_doc["finished_at"] == T0 + 100
        assert tasks["s1:0"]["status"] == TaskStatus.COMPLETED
        assert {tasks[t]["status"] for t in ("s1:1", "s1:2")} == {TaskStatus.CANCELLED}
        assert len(emitted) == 1


def test_a_story_without_scenes_fails_with_a_reason_and_completes_once():
    view = reduce_story("s1", None, {}, [story("s1", n_scenes=0)], count_scenes=count_scenes)
    assert view.story["status"] == StoryStatus.FAILED
    assert view.story["error"]["code"] == "empty_story" and view.story["task_count"] == 0
    assert view.completed is not None and view.completed.tasks_completed == 0
    again = reduce_story("s1", view.story, {}, [*expand(view.completed)], count_scenes=count_scenes)
    assert again.completed is None and again.story["_completed_emitted"] is True


def test_events_before_the_submission_still_build_a_story():
    facts = lifecycle()
    late_submission = [f for f in facts if f.__class__.__name__ != "StorySubmitted"]
    view = reduce_story("s1", None, {}, late_submission, count_scenes=count_scenes)
    assert view.story["account_id"] == "acct-1" and view.story["task_count"] == 3
    assert view.story["submitted_at"] is None


def test_a_retriable_failure_is_not_final_but_a_final_failure_is():
    facts = lifecycle()[:7]
    view = reduce_story(
        "s1", None, {}, [*facts, failed("s1", 0, T0 + 70, retriable=True)], count_scenes=count_scenes
    )
    assert view.tasks["s1:0"]["status"] == TaskStatus.FAILED and view.story["status"] == StoryStatus.RUNNING
    view = reduce_story("s1", None, {}, [*facts, failed("s1", 0, T0 + 70)], count_scenes=count_scenes)
    assert view.tasks["s1:0"]["error"]["error_class"] == "torch.OutOfMemoryError"
    assert view.story["counts"]["failed"] == 1


def test_count_scenes_errors_are_streams_errors():
    with pytest.raises(StreamsError):
        count_scenes(story("s1", n_scenes=0))
