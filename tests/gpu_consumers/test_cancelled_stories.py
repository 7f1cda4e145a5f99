"""The bounded set of cancelled story ids the watcher fills (pure)."""

from __future__ import annotations

import pytest

from gpu_consumers.cancellations import CancelledStories


def test_the_oldest_ids_go_first_when_full() -> None:
    stories = CancelledStories(capacity=2)
    assert stories.add("a", 1) and stories.add("b", 2)
    assert not stories.add("a", 3)  # seen again: refreshed, not new
    stories.add("c", 4)
    assert "b" not in stories and "a" in stories and "c" in stories and len(stories) == 2


def test_ids_older_than_the_lookback_are_dropped() -> None:
    now = [10_000]
    stories = CancelledStories(max_age_ms=1_000, clock=lambda: now[0])
    stories.add("old", 8_000)
    assert "old" not in stories
    stories.add("recent", 9_500)
    now[0] = 11_000
    stories.add("new", 11_000)
    assert "recent" not in stories and "new" in stories


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        CancelledStories(capacity=0)
