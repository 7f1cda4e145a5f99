"""The contract check: good events pass untouched; each broken rule names its field (and the task)."""

from __future__ import annotations

import dataclasses

import pytest

from schemas.codec import Codec
from schemas.contract import MAX_SEQUENCE, MAX_TASKS, check
from schemas.events import BatchReady, StorySubmitted, TaskFailed, TaskProgress, TaskRequested
from schemas.exceptions import CodecError, ContractError
from schemas.ids import batch_id
from tests.schemas.factories import STORY, all_events, batch_ready, params, task_requested

CODEC = Codec()


@pytest.mark.parametrize("event", all_events(), ids=lambda e: type(e).__name__)
def test_every_good_event_passes_and_reads_back(event):
    assert check(event) is event
    assert CODEC.read(CODEC.encode(event)) == event


def _story(**changes: object) -> StorySubmitted:
    story = next(e for e in all_events() if isinstance(e, StorySubmitted))
    return dataclasses.replace(story, **changes)


@pytest.mark.parametrize(
    ("event", "field", "names_story"),
    [
        (_story(story_id=""), "story_id", False),
        (_story(story_id="../etc"), "story_id", False),
        (_story(story_id="a/b"), "story_id", False),
        (_story(story_id="x" * 129), "story_id", False),
        (_story(account_id=""), "account_id", True),
        (_story(sequence=2**63 - 1), "sequence", True),
        (_story(sequence=-1), "sequence", True),
        (_story(params=params(guidance_scale=float("nan"))), "params.guidance_scale", True),
        (_story(params=params(width=1 << 20)), "params.width", True),
        (_story(params=params(seed=-5)), "params.seed", True),
        (_story(submitted_at=-1), "submitted_at", True),
        (_story(title="t" * 5000), "title", True),
        (_story(model="has space"), "model", True),
    ],
)
def test_story_rules_name_the_field(event, field, names_story):
    with pytest.raises(ContractError) as caught:
        check(event)
    assert caught.value.field == field
    assert field in str(caught.value)
    assert caught.value.event is event
    assert caught.value.story_id == (event.story_id if names_story else None)
    assert isinstance(caught.value, CodecError)  # every consumer's DLQ path already takes it


def test_duplicate_scene_indexes_are_refused():
    story = _story()
    scene = story.scenes[0]
    with pytest.raises(ContractError, match=r"scenes\[1\].index: index 0 appears twice"):
        check(dataclasses.replace(story, scenes=(scene, scene)))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"task_id": f"{STORY}:²"}, "task_id"),
        ({"task_id": f"{STORY}:01"}, "task_id"),
        ({"task_id": f"{STORY}:1"}, "task_id"),  # scene_index is 0
        ({"task_id": "other:0"}, "task_id"),
        ({"task_count": 0}, "task_count"),
        ({"task_count": MAX_TASKS + 1}, "task_count"),
        ({"attempt": 101}, "attempt"),
        ({"prompt": "   "}, "prompt"),
        ({"deadline": 2**60}, "deadline"),
    ],
)
def test_task_rules_name_the_field_and_the_task_where_it_is_sound(changes, field):
    task = dataclasses.replace(task_requested(0), **changes)
    with pytest.raises(ContractError) as caught:
        check(task)
    assert caught.value.field == field
    assert caught.value.story_id == STORY
    assert caught.value.task_id == (None if field == "task_id" else task.task_id)


def test_sequence_bound_leaves_room_for_the_next_event():
    task = dataclasses.replace(task_requested(0), sequence=MAX_SEQUENCE)
    assert check(task) is task
    CODEC.encode(dataclasses.replace(task, sequence=task.sequence + 1))  # still encodes


def test_batch_rules():
    batch = batch_ready(3)
    assert check(batch) is batch
    bad_id = dataclasses.replace(batch, batch_id="b-" + "0" * 24)
    with pytest.raises(ContractError, match="batch_id: .* is not the id of its tasks"):
        check(bad_id)
    traversal = dataclasses.replace(batch.tasks[1], story_id="..", task_id="..:1")
    tasks = (batch.tasks[0], traversal)
    with pytest.raises(ContractError) as caught:
        check(dataclasses.replace(batch, tasks=tasks, batch_id=batch_id(t.task_id for t in tasks)))
    assert caught.value.field == "tasks[1].story_id"
    with pytest.raises(ContractError, match="tasks: 0 tasks"):
        check(dataclasses.replace(batch, tasks=()))
    twice = (batch.tasks[0], batch.tasks[0])
    with pytest.raises(ContractError, match="a task appears twice"):
        check(dataclasses.replace(batch, tasks=twice, batch_id=batch_id(t.task_id for t in twice)))
    with pytest.raises(ContractError, match="pool"):
        check(dataclasses.replace(batch, pool="no/pool"))


def test_task_event_rules():
    progress = TaskProgress(
        story_id=STORY, task_id=f"{STORY}:0", batch_id=batch_ready(1).batch_id, consumer_id="gpu-0",
        step=5, total_steps=4,
    )  # fmt: skip
    with pytest.raises(ContractError, match=r"step: 5 is outside \[0, 4\]"):
        check(progress)
    failed = TaskFailed(
        story_id=STORY, task_id=f"{STORY}:0", consumer_id="c", error_class="", message="m",
        attempt=0, retriable=False,
    )  # fmt: skip
    with pytest.raises(ContractError, match="error_class: must not be empty"):
        check(failed)


def test_read_raises_contract_errors_and_decode_does_not():
    bad = dataclasses.replace(task_requested(0), task_id=f"{STORY}:²")
    data = CODEC.encode(bad)
    assert CODEC.decode(data) == bad
    with pytest.raises(ContractError, match="task_id"):
        CODEC.read(data)
    assert isinstance(CODEC.decode(CODEC.encode(batch_ready(2))), BatchReady)
    assert isinstance(CODEC.read(CODEC.encode(task_requested(1))), TaskRequested)
