"""The split / retry / fail decision, on single cases and on recorded sequences of pipeline calls."""

from __future__ import annotations

import collections
from collections.abc import Callable

import pytest

from gpu_consumers.failures import FailureKind, classify
from gpu_consumers.recovery import Action, Decision, decide

OOM, PERMANENT, TRANSIENT = FailureKind.OUT_OF_MEMORY, FailureKind.PERMANENT, FailureKind.TRANSIENT


def replay(
    size: int, call: Callable[[int, int], FailureKind | None], max_retries: int = 2
) -> tuple[list[tuple[int, str]], list[int], list[int]]:
    """Drive :func:`decide` as the executor does: chunks in a queue, halves first, retries in place.

    ``call(number, size)`` is the pipeline call's result (``None``: it rendered). Returns what each
    call did (its size and ``ok`` or the decision), the sizes that completed and those that failed.
    """
    work = collections.deque([(size, 0)])
    calls: list[tuple[int, str]] = []
    done: list[int] = []
    failed: list[int] = []
    while work:
        chunk, retries = work.popleft()
        kind = call(len(calls), chunk)
        if kind is None:
            calls.append((chunk, "ok"))
            done.append(chunk)
            continue
        decision = decide(kind, size=chunk, retries=retries, max_retries=max_retries)
        calls.append((chunk, decision.action.value))
        if decision.action is Action.SPLIT:
            work.extendleft([(chunk - decision.half, retries), (decision.half, retries)])
        elif decision.action is Action.RETRY:
            work.appendleft((chunk, decision.retry))
        else:
            failed.append(chunk)
    return calls, done, failed


def test_out_of_memory_splits_in_halves_the_smaller_first() -> None:
    assert decide(OOM, size=5, retries=0, max_retries=2) == Decision(Action.SPLIT, half=2)
    assert decide(OOM, size=2, retries=2, max_retries=2) == Decision(Action.SPLIT, half=1)


def test_out_of_memory_on_one_task_retries_then_fails() -> None:
    assert decide(OOM, size=1, retries=0, max_retries=2) == Decision(Action.RETRY, retry=1)
    assert decide(OOM, size=1, retries=2, max_retries=2) == Decision(Action.FAIL)


def test_invalid_input_fails_at_once() -> None:
    assert decide(PERMANENT, size=4, retries=0, max_retries=3) == Decision(Action.FAIL)


def test_other_errors_retry_until_the_limit() -> None:
    decisions = [decide(TRANSIENT, size=3, retries=r, max_retries=3) for r in range(5)]
    assert decisions == [
        Decision(Action.RETRY, retry=1),
        Decision(Action.RETRY, retry=2),
        Decision(Action.RETRY, retry=3),
        Decision(Action.FAIL),
        Decision(Action.FAIL),
    ]
    assert decide(TRANSIENT, size=1, retries=0, max_retries=0) == Decision(Action.FAIL)


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError, match="size must be >= 1, got 0"):
        decide(TRANSIENT, size=0, retries=0, max_retries=3)
    with pytest.raises(ValueError, match="retries must be >= 0, got -1"):
        decide(TRANSIENT, size=1, retries=-1, max_retries=3)


def test_recorded_out_of_memory_above_two_tasks() -> None:
    # The executor's own case: five tasks on a device that fits two (calls of 5, 2, 3, 1, 2).
    calls, done, failed = replay(5, lambda number, size: OOM if size > 2 else None)
    assert calls == [(5, "split"), (2, "ok"), (3, "split"), (1, "ok"), (2, "ok")]
    assert sum(done) == 5 and failed == []


def test_recorded_flaky_call_recovers_on_the_second_retry() -> None:
    calls, done, failed = replay(4, lambda number, size: TRANSIENT if number < 2 else None)
    assert calls == [(4, "retry"), (4, "retry"), (4, "ok")]
    assert done == [4] and failed == []


def test_recorded_broken_driver_fails_after_the_last_retry() -> None:
    calls, done, failed = replay(2, lambda number, size: TRANSIENT)
    assert calls == [(2, "retry"), (2, "retry"), (2, "fail")]
    assert done == [] and failed == [2]


def test_recorded_halves_keep_the_retries_spent_before_the_split() -> None:
    # A transient error, then out of memory: each half has one retry left, not two.
    script = {0: TRANSIENT, 1: OOM}
    calls, done, failed = replay(4, lambda number, size: script.get(number, TRANSIENT))
    assert calls == [(4, "retry"), (4, "split"), (2, "retry"), (2, "fail"), (2, "retry"), (2, "fail")]
    assert failed == [2, 2]


def test_errors_are_classified_for_the_decision() -> None:
    assert classify(MemoryError()) is OOM
    assert classify(RuntimeError("CUDA error: out of memory")) is OOM
    assert classify(ValueError("width must be a multiple of 16")) is PERMANENT
    assert classify(RuntimeError("NCCL timeout")) is TRANSIENT
