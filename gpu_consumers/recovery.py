"""What to do about a chunk whose pipeline call failed: split it, retry it, or fail its tasks.

A pure decision on values (the kind of failure, the chunk's size, its retries so far, the retry
limit); the executor classifies the error, asks :func:`decide` and carries the decision out (the
backoff wait, the halves, the TaskFailed events and the dead letter).

Out of memory splits a chunk of two or more in halves, the first half first, each keeping the
chunk's retries (a smaller batch may fit, and splitting is not a retry). Invalid input fails at once.
Anything else, including out of memory on a single task, retries while the chunk has retries left,
then fails.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gpu_consumers.failures import FailureKind


class Action(enum.Enum):
    SPLIT = "split"
    RETRY = "retry"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a failed chunk: for a split, where; for a retry, which one it is."""

    action: Action
    half: int = 0  # SPLIT: the size of the first half (the second holds the rest)
    retry: int = 0  # RETRY: the retry's number, 1-based (what the backoff delay is computed for)


def decide(kind: FailureKind, *, size: int, retries: int, max_retries: int) -> Decision:
    """Split, retry or fail a chunk of ``size`` tasks that failed with ``kind`` after ``retries``."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    if kind is FailureKind.OUT_OF_MEMORY and size > 1:
        return Decision(Action.SPLIT, half=size // 2)
    if kind is FailureKind.PERMANENT or retries >= max_retries:
        return Decision(Action.FAIL)
    return Decision(Action.RETRY, retry=retries + 1)
