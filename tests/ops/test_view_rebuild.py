"""``storee view``'s pure parts: digests, the diff and its reasons, the pointer's swaps and its cache."""

from __future__ import annotations

import pytest

from ops.runtime.view_pointer import (
    PointerCache,
    ViewPointer,
    collection_names,
    rolled_back,
    swapped,
)
from ops.view.digest import (
    BATCH_REASON,
    EVENTS_REASON,
    ONLY_LIVE,
    ONLY_SHADOW,
    StoryDocs,
    compare,
    digest,
)
from ops.view.generations import ViewGenerations


def _story(story_id: str = "s1", **fields: object) -> dict[str, object]:
    return {"_id": story_id, "account_id": "a1", "status": "running", "updated_at": 10, "_seq": 3, **fields}


def _task(story_id: str = "s1", index: int = 0, **fields: object) -> dict[str, object]:
    base = {"_id": f"{story_id}:{index}", "story_id": story_id, "status": "batched", "batch_id": "b1"}
    return {**base, "batched_at": 5, **fields}


def _docs(story: dict[str, object] | None = None, *tasks: dict[str, object]) -> StoryDocs:
    return StoryDocs(
        story if story is not None else _story(), {str(t["_id"]): t for t in tasks or (_task(),)}
    )


def test_the_digest_ignores_the_revision_and_old_documents_gaps_only() -> None:
    same = digest(_docs())
    assert digest(_docs(_story(_rev="abc"), _task(_rev="def"))) == same
    assert digest(_docs(_story(_tasks=None, _rejected=None))) == same  # absent in old documents = default
    assert digest(_docs(_story(updated_at=11))) != same  # an event time, not the time of the write
    assert digest(_docs(_story(_seq=4))) != same  # bookkeeping that ordering depends on counts
    assert digest(_docs(_story(), _task(status="running"))) != same


def test_the_digest_does_not_depend_on_key_or_task_order() -> None:
    one = StoryDocs(_story(), {"s1:0": _task(index=0), "s1:1": _task(index=1)})
    other = StoryDocs(
        dict(reversed(list(_story().items()))), {"s1:1": _task(index=1), "s1:0": _task(index=0)}
    )
    assert digest(one) == digest(other)


def test_identical_generations_compare_identical_with_counts() -> None:
    live = {"s1": _docs(), "s2": _docs(_story("s2"), _task("s2", 0), _task("s2", 1))}
    comparison = compare(live, dict(live))
    assert comparison.identical
    assert (comparison.live_stories, comparison.live_tasks) == (2, 3)
    assert (comparison.shadow_stories, comparison.shadow_tasks) == (2, 3)


def test_the_diff_says_what_differs_and_why() -> None:
    live = {
        "gone": _docs(_story("gone"), _task("gone")),
        "s1": _docs(_story(status="completed"), _task(status="completed")),
        "old": _docs(_story("old"), _task("old")),
    }
    shadow = {
        "new": _docs(_story("new"), _task("new")),
        "s1": _docs(_story(status="running"), _task(status="completed")),
        "old": _docs(_story("old"), _task("old", batch_id=None, batched_at=None)),
    }
    comparison = compare(live, shadow)
    assert not comparison.identical
    assert comparison.differing == ("gone", "new", "old", "s1")
    by = {(d.story_id, d.what): d for d in comparison.differences}
    assert by[("gone", "story")].reason == ONLY_LIVE
    assert by[("new", "story")].reason == ONLY_SHADOW
    assert by[("s1", "story.status")].reason == EVENTS_REASON
    assert (by[("s1", "story.status")].live, by[("s1", "story.status")].shadow) == (
        '"completed"',
        '"running"',
    )
    assert by[("old", "task old:0.batch_id")].reason == BATCH_REASON  # batches.* keep 7 days
    assert by[("old", "task old:0.batched_at")].reason == BATCH_REASON
    assert ("s1", "task s1:0.status") not in by  # the task is the same


def test_a_task_on_one_side_only_is_named() -> None:
    live = {"s1": _docs(_story(), _task(index=0), _task(index=1))}
    shadow = {"s1": _docs(_story(), _task(index=0))}
    (difference,) = compare(live, shadow).differences
    assert (difference.what, difference.live, difference.shadow) == ("task s1:1", "present", "missing")


def test_the_diff_is_bounded() -> None:
    live = {f"s{i}": _docs(_story(f"s{i}")) for i in range(100)}
    comparison = compare(live, {}, limit=10)
    assert len(comparison.differing) == 100
    assert len(comparison.differences) == 10


def test_generation_zero_is_the_original_collections() -> None:
    assert collection_names(0) == ("stories", "tasks")
    assert collection_names(3) == ("stories_g3", "tasks_g3")
    with pytest.raises(ValueError, match="generation"):
        collection_names(-1)


def test_a_swap_keeps_the_live_generation_as_previous_and_rollback_returns_to_it() -> None:
    start = ViewPointer.from_doc(None)
    assert start == ViewPointer(current=0, previous=None, swapped_at=None)
    after = swapped(start, 1, now_ms=1000)
    assert after == ViewPointer(current=1, previous=0, swapped_at=1000)
    back = rolled_back(after, now_ms=2000)
    assert back == ViewPointer(current=0, previous=1, swapped_at=2000)
    assert ViewPointer.from_doc({"_id": "job_view", **after.to_doc(), "since": []}) == after
    with pytest.raises(ValueError, match="already live"):
        swapped(after, 1, now_ms=3000)
    with pytest.raises(ValueError, match="no previous"):
        rolled_back(start, now_ms=3000)


def test_the_pointer_cache_rereads_after_its_refresh_interval() -> None:
    now = [100.0]
    cache = PointerCache(refresh_s=1.0, clock=lambda: now[0])
    assert cache.stale()
    cache.update({"current": 2, "previous": 0})
    assert cache.pointer.current == 2 and not cache.stale()
    now[0] += 0.99
    assert not cache.stale()
    now[0] += 0.01
    assert cache.stale()


class _Database:
    """Just enough of a pymongo Database for pruning: collection names and drops."""

    def __init__(self, names: set[str], pointer: dict[str, object] | None) -> None:
        self.names = names
        self.pointer = pointer

    def __getitem__(self, name: str) -> _Database:
        return self

    def find_one(self, query: object) -> dict[str, object] | None:
        return self.pointer

    def list_collection_names(self) -> list[str]:
        return sorted(self.names)

    def drop_collection(self, name: str) -> None:
        self.names.discard(name)


def test_pruning_keeps_the_live_the_previous_and_the_newest_others() -> None:
    names = {"stories", "tasks", *(f"{kind}_g{g}" for kind in ("stories", "tasks") for g in (1, 2, 3, 4))}
    database = _Database(names, {"current": 4, "previous": 3})
    generations = ViewGenerations(database)  # type: ignore[arg-type]
    assert generations.next_generation() == 5
    assert generations.prune(keep=2) == [1]  # 0 is never dropped; 4 live, 3 previous, 2 kept
    assert generations.existing() == [0, 2, 3, 4]
    assert generations.prune(keep=1) == [2]
    with pytest.raises(ValueError, match="never dropped"):
        generations.drop(0)


def test_a_field_the_live_document_predates_is_an_expected_difference() -> None:
    # A story written before retries existed has no attempts; the rebuild adds them: that is the upgrade.
    new_story = {"_id": "s1", "status": "completed", "attempts": [{"retry": 0}]}
    new_task = {"_id": "s1:0", "status": "completed", "params": {"width": 64}}
    old = StoryDocs({"_id": "s1", "status": "completed"}, {"s1:0": {"_id": "s1:0", "status": "completed"}})
    rebuilt = StoryDocs(new_story, {"s1:0": new_task})
    result = compare({"s1": old}, {"s1": rebuilt})
    assert result.identical and result.expected == ("s1",)
    assert {d.what for d in result.expected_differences} == {"story.attempts", "task s1:0.params"}
    # A field both have with different values is still a difference.
    older = StoryDocs({"_id": "s1", "status": "failed"}, {"s1:0": {"_id": "s1:0", "status": "completed"}})
    assert not compare({"s1": older}, {"s1": rebuilt}).identical
