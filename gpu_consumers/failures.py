"""How a failed pipeline call is classified, and the backoff before a retry.

Pure classification and backoff arithmetic; :mod:`gpu_consumers.recovery` decides between splitting,
retrying and failing, and the executor does the waiting and the splitting.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from gpu_consumers.exceptions import UnsupportedTask


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, up to ``max_retries`` retries after the first attempt."""

    max_retries: int = 3
    base_s: float = 1.0
    max_s: float = 30.0

    def delay(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1-based): half fixed, half random.

        The random half spreads out retries of consumers that failed together (a broker or a shared
        file system blip); the fixed half keeps a retry from coming back at once.
        """
        if retry < 1:
            raise ValueError(f"retry must be >= 1, got {retry}")
        cap = min(self.max_s, self.base_s * 2 ** (retry - 1))
        return cap / 2 + rng.uniform(0, cap / 2)


class FailureKind(enum.Enum):
    OUT_OF_MEMORY = "out_of_memory"  # a smaller batch may fit
    PERMANENT = "permanent"  # the input is invalid for this pipeline: retrying cannot help
    TRANSIENT = "transient"  # anything else: a retry may succeed


def classify(error: BaseException) -> FailureKind:
    """The kind of a pipeline call's failure."""
    if is_out_of_memory(error):
        return FailureKind.OUT_OF_MEMORY
    if is_permanent(error):
        return FailureKind.PERMANENT
    return FailureKind.TRANSIENT


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is the device (or host) running out of memory, which a smaller batch may fix."""
    if isinstance(error, MemoryError):
        return True
    # torch.OutOfMemoryError (torch.cuda.OutOfMemoryError) by name, so this module needs no torch;
    # older CUDA and MPS paths raise a bare RuntimeError that only says so in its message.
    if type(error).__name__ == "OutOfMemoryError":
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def is_permanent(error: BaseException) -> bool:
    """Whether retrying cannot help: the batch's input is invalid for this pipeline."""
    return isinstance(error, (UnsupportedTask, ValueError, TypeError))


def error_class(error: BaseException) -> str:
    """The short class name used in TaskFailed events and failure metrics."""
    return type(error).__name__
