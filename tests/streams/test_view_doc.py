"""The job view's typed documents: the stored shape stays what MongoDB already holds, ranks keep order."""

from __future__ import annotations

import bson

from schemas.view import TaskStatus
from streams.view import reduce_story
from streams.view_doc import (
    Finality,
    HeadKey,
    Outcome,
    Phase,
    Source,
    StoryDoc,
    TaskDoc,
    batch_choice,
    final_rank,
    head_key,
    new_story,
    new_task,
    open_rank,
    queued,
    source,
    start,
    submission,
)
from tests.streams.test_view import count_scenes, lifecycle

# The stored key order of a new document: MongoDB keeps it, and revisions are computed over it.
STORY_KEYS = [
    "_id", "account_id", "tier", "title", "task_type", "model", "status", "error", "task_count", "counts",
    "progress", "submitted_at", "started_at", "finished_at", "callback_url", "webhook_events",
    "idempotency_key", "outputs", "updated_at", "retry", "attempts", "_sub", "_tc_req", "_tc_split",
    "_split_error", "_cancel", "_completed_emitted", "_emitted", "_runs", "_ends", "_seq", "_tasks",
    "_rejected",
]  # fmt: skip
TASK_KEYS = [
    "_id", "story_id", "account_id", "tier", "pool", "task_type", "model", "scene_index", "prompt",
    "status", "batch_id", "consumer_id", "attempt", "step", "total_steps", "queued_at", "batched_at",
    "started_at", "finished_at", "deadline", "outputs", "error", "simulated", "updated_at",
    "params", "input", "_src", "_queued", "_batch", "_start", "_head", "_h", "_seq",
]  # fmt: skip


def _declared(doc_type: type) -> set[str]:
    return set(doc_type.__required_keys__ | doc_type.__optional_keys__)  # type: ignore[attr-defined]


def test_new_documents_keep_their_stored_key_order() -> None:
    assert list(new_story("s1")) == STORY_KEYS
    assert list(new_task("s1:2")) == TASK_KEYS
    assert new_task("s1:2")["story_id"] == "s1" and new_task("s1:2")["scene_index"] == 2


def test_the_types_declare_every_stored_key_and_only_those() -> None:
    assert _declared(StoryDoc) == {*STORY_KEYS, "_rev"}
    assert _declared(TaskDoc) == {*TASK_KEYS, "_rev"}


def test_rank_values_are_the_stored_ones() -> None:
    # Stored inside _head and _src keys of documents already in MongoDB: renumbering would reorder them.
    assert [int(p) for p in (Phase.QUEUED, Phase.BATCHED, Phase.RUNNING, Phase.RETRYING)] == [0, 1, 2, 3]
    assert [int(o) for o in (Outcome.EXPIRED, Outcome.FAILED, Outcome.COMPLETED)] == [0, 1, 2]
    assert (Finality.OPEN, Finality.FINAL, Source.REQUESTED, Source.BATCH) == (0, 1, 2, 3)


def test_named_ranks_order_a_tasks_events() -> None:
    ordered = [
        open_rank(0, Phase.QUEUED),
        open_rank(0, Phase.BATCHED),
        open_rank(0, Phase.RUNNING),
        open_rank(0, Phase.RETRYING),
        open_rank(1, Phase.QUEUED),  # a retry's request beats the failure before it
        final_rank(Outcome.EXPIRED, 0),  # any final outcome beats every open phase of any attempt
        final_rank(Outcome.FAILED, 0),
        final_rank(Outcome.FAILED, 1),
        final_rank(Outcome.COMPLETED, 0),  # a completion beats a later attempt's final failure
    ]
    assert sorted(reversed(ordered)) == ordered
    assert open_rank(7, Phase.RUNNING) < final_rank(Outcome.EXPIRED, 0)


def test_ranks_are_stored_as_plain_ints() -> None:
    view = reduce_story("s1", None, {}, lifecycle(), count_scenes=count_scenes)
    for task in view.tasks.values():
        for key in ("_src", "_queued", "_batch", "_start", "_head"):
            stored = task[key]  # type: ignore[literal-required]
            assert stored is None or all(type(v) in (int, str) for v in stored), (task["_id"], key, stored)


def test_the_typed_document_round_trips_through_bson() -> None:
    view = reduce_story("s1", None, {}, lifecycle(), count_scenes=count_scenes)
    stored_story = bson.decode(bson.encode(view.story))
    stored_tasks = {key: bson.decode(bson.encode(doc)) for key, doc in view.tasks.items()}
    assert stored_story == view.story and stored_tasks == view.tasks
    again = reduce_story("s1", stored_story, stored_tasks, [], count_scenes=count_scenes)  # type: ignore[arg-type]
    assert again.story == view.story and again.tasks == view.tasks
    assert bson.encode(again.tasks["s1:0"]) == bson.encode(view.tasks["s1:0"])


def test_accessors_read_the_bookkeeping_lists() -> None:
    view = reduce_story("s1", None, {}, lifecycle(), count_scenes=count_scenes)
    first, retried, late = view.tasks["s1:0"], view.tasks["s1:1"], view.tasks["s1:2"]
    head = head_key(first)
    assert isinstance(head, HeadKey) and head.is_final and head.major == Outcome.COMPLETED
    assert first["status"] == TaskStatus.COMPLETED
    assert source(first) is not None and source(first).source == Source.REQUESTED  # type: ignore[union-attr]
    assert batch_choice(first) is not None and batch_choice(first).batch_id == first["batch_id"]  # type: ignore[union-attr]
    assert queued(first) is not None and queued(first).at == first["queued_at"]  # type: ignore[union-attr]
    assert start(retried) is not None and start(retried).attempt == 1  # type: ignore[union-attr]
    assert head_key(late) is not None and head_key(late).major == Outcome.EXPIRED  # type: ignore[union-attr]
    assert submission(view.story) is not None and submission(view.story).event_id == "sub-s1".ljust(32, "0")  # type: ignore[union-attr]
