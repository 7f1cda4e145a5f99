"""The stall watch: lag that does not move is nudged once, then the worker restarts."""

from __future__ import annotations

from streams.stalls import Remedy, StallWatch


def test_moving_or_caught_up_partitions_are_never_stuck():
    watch = StallWatch(timeout_s=10)
    assert watch.observe(0, {"a": (5, 9), "b": (3, 3)}) == {}
    assert watch.observe(11, {"a": (7, 9), "b": (3, 3)}) == {}  # a moved
    assert watch.observe(30, {"a": (9, 9), "b": (3, 3)}) == {}  # a caught up
    assert watch.observe(50, {"a": (9, 12), "b": (3, 3)}) == {}  # new records: the clock starts again


def test_a_stuck_partition_is_nudged_then_restarted():
    watch = StallWatch(timeout_s=10)
    assert watch.observe(0, {"a": (5, 9)}) == {}
    assert watch.observe(9, {"a": (5, 9)}) == {}
    assert watch.observe(10, {"a": (5, 9)}) == {"a": Remedy.NUDGE}
    assert watch.observe(15, {"a": (5, 9)}) == {}  # the nudge gets a full timeout
    assert watch.observe(20, {"a": (5, 9)}) == {"a": Remedy.RESTART}


def test_a_nudge_that_works_is_forgotten():
    watch = StallWatch(timeout_s=10)
    watch.observe(0, {"a": (5, 9)})
    assert watch.observe(10, {"a": (5, 9)}) == {"a": Remedy.NUDGE}
    assert watch.observe(12, {"a": (6, 9)}) == {}  # moved after the nudge
    assert watch.observe(22, {"a": (6, 9)}) == {"a": Remedy.NUDGE}  # a new stall starts over


def test_revoked_partitions_and_resets_are_forgotten():
    watch = StallWatch(timeout_s=10)
    watch.observe(0, {"a": (5, 9), "b": (1, 2)})
    assert watch.observe(10, {"b": (1, 2)}) == {"b": Remedy.NUDGE}
    watch.reset()
    assert watch.observe(11, {"a": (5, 9), "b": (1, 2)}) == {}
    assert watch.observe(21, {"a": (5, 9), "b": (1, 2)}) == {"a": Remedy.NUDGE, "b": Remedy.NUDGE}
