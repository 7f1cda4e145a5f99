"""How often progress events go out: a throttle per pipeline call (pure, injectable clock)."""

from __future__ import annotations

import time
from collections.abc import Callable


class ProgressThrottle:
    """Lets a progress report through at most every ``interval_s``, and always the last step."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval_s
        self._clock = clock
        self._last = float("-inf")

    def due(self, step: int, total: int) -> bool:
        now = self._clock()
        if step >= total or now - self._last >= self._interval:
            self._last = now
            return True
        return False
