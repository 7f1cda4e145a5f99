"""The status rules on recorded observation sequences: what Burrow gets right, without its false alarms.

Each case is a list of (seconds, committed, log end, oldest record's timestamp, member) readings, fed
through the same window the monitor keeps; a 60 s window and a 30 s lag-seconds threshold throughout.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ops.lag.model import Member, PartitionReading
from ops.lag.status import GroupStatus, PartitionStatus, Verdict, advance, evaluate, group_status, is_full

WINDOW = 60.0
WARN_S = 30.0
A = Member("gpu-1", "/10.0.0.1", "member-a")
B = Member("gpu-1", "/10.0.0.1", "member-b")  # the same process rejoined

Row = tuple[float, int | None, int, float | None, Member | None]


def judge(rows: Sequence[Row], *, warn_seconds: float = WARN_S) -> tuple[Verdict, int]:
    """Feed ``rows`` through the window; the verdict after the last, and how many readings it weighed."""
    window: tuple[PartitionReading, ...] = ()
    for at, committed, log_end, oldest, member in rows:
        r = PartitionReading("g", "t", 0, at, committed, 0, log_end, oldest, member)
        window = advance(window, r, WINDOW)
    return evaluate(window, WINDOW, warn_seconds), len(window)


def every(seconds: float, until: float) -> list[float]:
    return [i * seconds for i in range(int(until / seconds) + 1)]


def test_idle_caught_up_is_ok_however_long_nothing_happens() -> None:
    verdict, _ = judge([(t, 500, 500, None, None) for t in every(10, 3600)])
    assert verdict.status is PartitionStatus.OK
    assert verdict.reason == "caught up in the window"


def test_slow_but_keeping_up_is_ok() -> None:
    # Always a few records behind (a new one each second, consumed a second later): never caught up at a
    # reading, commits move, lag does not grow, the oldest record is a second old.
    rows: list[Row] = [(t, int(t) - 3, int(t), t - 1.0, A) for t in every(5, 300)]
    verdict, _ = judge(rows)
    assert (verdict.status, verdict.severity) == (PartitionStatus.OK, GroupStatus.OK)


def test_a_member_holding_its_offset_while_records_wait_is_stall() -> None:
    rows: list[Row] = [(t, 100, 100 + int(t), 0.5, A) for t in every(10, 120)]
    verdict, _ = judge(rows)
    assert (verdict.status, verdict.severity) == (PartitionStatus.STALL, GroupStatus.ERR)


def test_stall_needs_a_full_window_so_a_long_batch_is_not_an_alarm() -> None:
    # A GPU member commits only after its batch: 40 s of a still offset is work in progress.
    rows: list[Row] = [(t, 100, 104, 0.0, A) for t in every(10, 40)]
    verdict, _ = judge(rows, warn_seconds=0)
    assert verdict.status is PartitionStatus.OK


def test_a_group_nobody_consumes_is_stop_once_records_wait_longer_than_the_window() -> None:
    # The consumer left at t=0 with lag 0; records arrive from t=5 and nobody reads them.
    rows: list[Row] = [(t, 10, 10 + (int(t) // 5), 5.0 if t >= 5 else None, None) for t in every(5, 100)]
    before, _ = judge([r for r in rows if r[0] <= 60])
    assert before.status is PartitionStatus.WARN  # waiting 55 s > 30 s threshold, not yet the window
    verdict, _ = judge(rows)
    assert (verdict.status, verdict.severity) == (PartitionStatus.STOP, GroupStatus.ERR)


def test_stop_is_judged_from_the_records_age_even_in_one_reading() -> None:
    verdict, samples = judge([(1000.0, 10, 12, 900.0, None)])
    assert (samples, verdict.status) == (1, PartitionStatus.STOP)
    fresh, _ = judge([(1000.0, 10, 12, 990.0, None)])
    assert fresh.status is PartitionStatus.OK  # 10 s old, nobody assigned yet: not an alarm


def test_an_operators_replay_is_rewind_and_the_group_only_warns() -> None:
    rows: list[Row] = [(0.0, 900, 1000, 0.0, A), (10.0, 950, 1000, 1.0, A)]
    rows += [(20.0, 950, 1000, 1.0, None), (30.0, 0, 1000, -5000.0, None)]  # stopped, reset to earliest
    rows += [(40.0, 120, 1000, -4000.0, B)]  # restarted: a new member replays
    verdict, _ = judge(rows)
    assert (verdict.status, verdict.severity) == (PartitionStatus.REWIND, GroupStatus.WARN)
    assert verdict.reason.startswith("replay")


def test_a_live_member_committing_backwards_is_rewind_and_an_error() -> None:
    rows: list[Row] = [(0.0, 500, 600, 0.0, A), (10.0, 200, 600, -300.0, A)]
    verdict, _ = judge(rows)
    assert (verdict.status, verdict.severity) == (PartitionStatus.REWIND, GroupStatus.ERR)


def test_a_replay_that_caught_up_is_ok() -> None:
    rows: list[Row] = [(0.0, 900, 900, None, A), (10.0, 0, 900, -5000.0, None), (20.0, 900, 900, None, B)]
    assert judge(rows)[0].status is PartitionStatus.OK


def test_lag_growing_while_commits_move_is_warn() -> None:
    rows: list[Row] = [(t, int(t), 2 * int(t) + 1, t - 1.0, A) for t in every(10, 70)]
    verdict, _ = judge(rows, warn_seconds=0)
    assert (verdict.status, verdict.severity) == (PartitionStatus.WARN, GroupStatus.WARN)
    assert verdict.reason == "lag grew across the window"


def test_bursty_lag_that_drains_is_no_alarm() -> None:
    # Idle, then a burst of 5,000 records at t=100, worked off at 200 a second; a reading every 5 s.
    rows: list[Row] = []
    for t in every(5, 200):
        end = 0 if t < 100 else 5000
        committed = 0 if t < 100 else min(5000, int((t - 100) * 200))
        oldest = None if committed >= end else 100.0 + committed / 200
        rows.append((t, committed, end, oldest, A))
    statuses = [judge(rows[: i + 1])[0].status for i in range(len(rows))]
    assert set(statuses) == {PartitionStatus.OK}


def test_lag_seconds_over_the_tier_threshold_is_warn() -> None:
    rows: list[Row] = [(t, int(t), int(t) + 5, t - 45.0, A) for t in every(10, 30)]
    verdict, _ = judge(rows)
    assert (verdict.status, verdict.reason) == (PartitionStatus.WARN, "oldest record waits > 30s")
    assert judge(rows, warn_seconds=0)[0].status is PartitionStatus.OK


def test_the_window_keeps_the_last_seconds_and_one_reading_before_them() -> None:
    window: tuple[PartitionReading, ...] = ()
    for t in every(10, 200):
        window = advance(window, PartitionReading("g", "t", 0, t, 1, 0, 1), WINDOW)
    assert [r.at for r in window] == [140.0, 150.0, 160.0, 170.0, 180.0, 190.0, 200.0]
    assert is_full(window, WINDOW)
    assert not is_full(window[1:], WINDOW)


def test_a_group_is_its_worst_partition() -> None:
    ok = Verdict(PartitionStatus.OK, GroupStatus.OK, "")
    replay = Verdict(PartitionStatus.REWIND, GroupStatus.WARN, "")
    stall = Verdict(PartitionStatus.STALL, GroupStatus.ERR, "")
    assert group_status([]) is GroupStatus.OK
    assert group_status([ok, replay]) is GroupStatus.WARN
    assert group_status([ok, replay, stall]) is GroupStatus.ERR


def test_an_empty_window_is_a_mistake() -> None:
    with pytest.raises(ValueError, match="at least one reading"):
        evaluate((), WINDOW, WARN_S)
