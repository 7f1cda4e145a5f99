from __future__ import annotations

from gpu_consumers.offsets import OffsetTracker

TP = ("batches", 0)


def test_commits_next_offset_once_done() -> None:
    tracker = OffsetTracker()
    tracker.take(TP, 5)
    assert tracker.finish(TP, 5) == 6


def test_newer_record_done_first_waits_for_the_older_one() -> None:
    tracker = OffsetTracker()
    tracker.take(TP, 5)
    tracker.take(TP, 6)
    assert tracker.finish(TP, 6) is None  # 5 still running: committing 7 would skip it after a crash
    assert tracker.finish(TP, 5) == 7


def test_partitions_are_independent() -> None:
    tracker = OffsetTracker()
    tracker.take(TP, 5)
    tracker.take(("batches", 1), 9)
    assert tracker.finish(("batches", 1), 9) == 10
    assert tracker.in_flight(TP) == 1


def test_forgotten_partition_commits_nothing() -> None:
    tracker = OffsetTracker()
    tracker.take(TP, 5)
    tracker.forget(TP)
    assert tracker.finish(TP, 5) is None
