"""The status of a partition over a sliding window of readings, and of a group: small named rules.

Burrow's states (ANCHORS.md, "Lag and replay") without its false alarms: a partition that was caught up
at any reading of the window is OK however quiet it is; STALL and growth WARN need a *full* window (the
readings span at least ``window_s``), so a consumer that commits every few seconds, or a GPU member in
the middle of a long batch, is not flagged from a short look; STOP needs records to have waited longer
than the window, judged from their real age. The rules, first match wins (``reason`` says which):

1. REWIND: the committed offset moved back inside the window and records wait. An operator's replay
   (``kafka-consumer-groups --reset-offsets`` needs an inactive group, so the group rejoins with new
   members) makes the group WARN; the same live member committing backwards (a zombie commit, a client
   restored from an old checkpoint) makes it ERR. A rewind that has caught up again is OK.
2. STOP (group ERR): no member is assigned the partition (empty group, or left unassigned) and the oldest
   waiting record is older than the window (without a timestamp: the offset stood still a full window).
3. STALL (group ERR): lag stayed above 0 across a full window, a member was assigned at every reading
   and the committed offset did not move.
4. WARN: lag stayed above 0 across a full window, the commits moved but lag never decreased and ended
   higher.
5. WARN: the oldest waiting record is older than the lag-seconds threshold of its tier. Ages are real
   record timestamps, so this holds even when the partition was caught up a moment ago.
6. OK: lag was 0 at some reading of the window, however quiet the partition is.
7. OK otherwise (consuming, keeping up or draining: a burst being worked off is not an alarm).

A group is as bad as its worst partition.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ops.lag.model import PartitionReading


class PartitionStatus(enum.StrEnum):
    OK = "OK"
    WARN = "WARN"
    STALL = "STALL"
    STOP = "STOP"
    REWIND = "REWIND"


class GroupStatus(enum.StrEnum):
    OK = "OK"
    WARN = "WARN"
    ERR = "ERR"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {GroupStatus.OK: 0, GroupStatus.WARN: 1, GroupStatus.ERR: 2}


@dataclass(frozen=True, slots=True)
class Verdict:
    """A partition's status, what it means for its group, and the rule that decided it."""

    status: PartitionStatus
    severity: GroupStatus
    reason: str


def _verdict(status: PartitionStatus, severity: GroupStatus, reason: str) -> Verdict:
    return Verdict(status, severity, reason)


def advance(
    window: Sequence[PartitionReading], reading: PartitionReading, window_s: float
) -> tuple[PartitionReading, ...]:
    """The window after ``reading``: readings of the last ``window_s`` seconds, plus the newest one at or
    before its start, so a window that has seen enough history spans at least ``window_s``."""
    kept = [*window, reading]
    start = reading.at - window_s
    while len(kept) > 1 and kept[1].at <= start:
        kept.pop(0)
    return tuple(kept)


def is_full(window: Sequence[PartitionReading], window_s: float) -> bool:
    return len(window) >= 2 and window[-1].at - window[0].at >= window_s


def evaluate(window: Sequence[PartitionReading], window_s: float, warn_seconds: float) -> Verdict:
    """The status of one partition over ``window`` (oldest first, at least one reading)."""
    if not window:
        raise ValueError("window must hold at least one reading")
    last = window[-1]
    age = last.lag_seconds
    rewind = _rewind_under(window)
    if rewind is not None and last.lag > 0:
        if rewind:
            return _verdict(
                PartitionStatus.REWIND, GroupStatus.ERR, "committed offset moved back under a live member"
            )
        return _verdict(
            PartitionStatus.REWIND, GroupStatus.WARN, "replay: offset reset back while the group was inactive"
        )
    if last.member is None and _waited(window, age, window_s):
        return _verdict(
            PartitionStatus.STOP, GroupStatus.ERR, f"no member consumes; records wait > {window_s:g}s"
        )
    caught_up = any(r.lag == 0 for r in window)
    full = is_full(window, window_s)
    if not caught_up and full:
        if all(r.member is not None for r in window) and len({r.committed for r in window}) == 1:
            return _verdict(
                PartitionStatus.STALL,
                GroupStatus.ERR,
                f"committed offset still for {window_s:g}s with lag > 0",
            )
        if _growing(window):
            return _verdict(PartitionStatus.WARN, GroupStatus.WARN, "lag grew across the window")
    if age is not None and warn_seconds > 0 and age > warn_seconds:
        return _verdict(PartitionStatus.WARN, GroupStatus.WARN, f"oldest record waits > {warn_seconds:g}s")
    if caught_up:
        return _verdict(PartitionStatus.OK, GroupStatus.OK, "caught up in the window")
    return _verdict(PartitionStatus.OK, GroupStatus.OK, "consuming")


def group_status(verdicts: Iterable[Verdict]) -> GroupStatus:
    """The worst severity of the group's partitions (OK for a group with none)."""
    return max((v.severity for v in verdicts), key=lambda s: s.rank, default=GroupStatus.OK)


def _rewind_under(window: Sequence[PartitionReading]) -> bool | None:
    """``None`` when no commit moved back; else whether one live member held the partition across it.

    A reset needs an inactive group, so a restarted consumer rejoins as a new member: the same member
    on both sides of the move means that member committed backwards itself.
    """
    found: bool | None = None
    for before, after in zip(window, window[1:], strict=False):
        if (
            before.committed is not None
            and after.committed is not None
            and after.committed < before.committed
        ):
            live = before.member is not None and before.member == after.member
            found = bool(found) or live
    return found


def _waited(window: Sequence[PartitionReading], age: float | None, window_s: float) -> bool:
    """Records have waited longer than the window: from their age, else (no timestamp) from the readings."""
    if age is not None:
        return age > window_s
    return is_full(window, window_s) and len({r.committed for r in window}) == 1


def _growing(window: Sequence[PartitionReading]) -> bool:
    lags = [r.lag for r in window]
    moved = len({r.committed for r in window}) > 1
    never_fell = all(b >= a for a, b in zip(lags, lags[1:], strict=False))
    return moved and never_fell and lags[-1] > lags[0]
