"""Deterministic ids: the same inputs always give the same task and batch ids."""

from __future__ import annotations

import re

import pytest

from schemas.ids import batch_id, new_event_id, now_ms, task_id


def test_task_ids_are_deterministic_and_distinct() -> None:
    assert task_id("story", 3) == task_id("story", 3) == "story:3"
    assert task_id("a:1", 2) != task_id("a", 12)
    with pytest.raises(ValueError, match="index"):
        task_id("story", -1)
    with pytest.raises(ValueError, match="story_id"):
        task_id("", 0)


def test_batch_id_depends_on_the_set_of_tasks_only() -> None:
    ids = [task_id("s", i) for i in range(5)]
    assert batch_id(ids) == batch_id(reversed(ids))
    assert batch_id(ids) != batch_id(ids[:4])
    assert re.fullmatch(r"b-[0-9a-f]{24}", batch_id(ids))
    with pytest.raises(ValueError, match="task_ids"):
        batch_id([])


def test_event_ids_and_clock() -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", new_event_id())
    assert new_event_id() != new_event_id()
    assert 1_700_000_000_000 < now_ms() < 4_000_000_000_000
