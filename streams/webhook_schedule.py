"""When to try a webhook again: a retry schedule as a value, and the verdict on each attempt.

The default schedule is the Standard Webhooks example's first seven steps: at once, then 5 s, 5 min,
30 min, 2 h, 5 h and 10 h after the previous try; seven attempts over about 17 h 35 min (a little less
with jitter). ``WEBHOOK_RETRY_SCHEDULE="0,5s,5m,30m,2h,5h,10h"`` says the same (:func:`parse_schedule`).

The verdict on an attempt (:func:`classify`), as the issue and the spec say:

* 2xx: delivered.
* 410 Gone: the receiver wants no more; the endpoint is disabled for this story, no further tries.
* anything else is a failure and is retried: 5xx, 429, timeouts and connection errors, and also 3xx
  (redirects are not followed) and the other 4xx. A 400 or 401 is usually a receiver's bug or a secret
  it has not picked up yet, which its owner fixes within the hours the schedule spans; giving up at
  once would lose the webhook for good.

A 429 or 503 with ``Retry-After`` (seconds or an HTTP date) waits at least that long, capped by
``retry_after_cap_s`` so a receiver cannot park a delivery for days. Jitter scales each delay by a
factor drawn from ``[1 - jitter, 1]`` with the random source passed in: 1.0 is full jitter, the 0.5
default keeps every wait at half its planned length or more, so the schedule keeps its shape while
receivers that failed together are not retried together. Times are unix seconds.
"""

from __future__ import annotations

import datetime
import email.utils
import math
import random as _random
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

DEFAULT_SCHEDULE = "0,5s,5m,30m,2h,5h,10h"
DEFAULT_JITTER = 0.5
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DELAY = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
_HONOURS_RETRY_AFTER = frozenset({429, 503})


class Verdict(StrEnum):
    DELIVERED = "delivered"  # 2xx
    GONE = "gone"  # 410: disable the endpoint for this story
    RETRY = "retry"  # any other status, a timeout or a connection error


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one attempt got: an HTTP ``status``, or none and the ``error`` (timeout, refused, reset)."""

    status: int | None = None
    retry_after: str | None = None  # the response's Retry-After header, as sent
    error: str | None = None

    def describe(self) -> str:
        """One line for the view's last error and the dead letter's reason."""
        if self.status is not None:
            return f"HTTP {self.status}"
        return self.error or "no response"


@dataclass(frozen=True, slots=True)
class Delivered:
    """The receiver took it; nothing more to do."""


@dataclass(frozen=True, slots=True)
class RetryAt:
    """Try again at ``due`` (unix seconds); ``reason`` is why this attempt failed."""

    due: float
    reason: str


@dataclass(frozen=True, slots=True)
class GiveUp:
    """No more tries: the schedule ran out (``disabled`` false, to the DLQ) or the receiver said 410."""

    reason: str
    disabled: bool = False


Decision = Delivered | RetryAt | GiveUp


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """Delays before each attempt (the first is usually 0), jitter, and the cap on Retry-After."""

    delays_s: tuple[float, ...]
    jitter: float = DEFAULT_JITTER
    retry_after_cap_s: float | None = None  # None: the schedule's longest delay

    def __post_init__(self) -> None:
        if not self.delays_s:
            raise ValueError("a retry schedule needs at least one delay")
        if any(not math.isfinite(d) or d < 0 for d in self.delays_s):
            raise ValueError(f"retry delays must be finite and >= 0, got {self.delays_s}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must be between 0 and 1, got {self.jitter}")
        if self.retry_after_cap_s is not None and self.retry_after_cap_s < 0:
            raise ValueError(f"retry_after_cap_s must be >= 0, got {self.retry_after_cap_s}")

    @property
    def attempts(self) -> int:
        return len(self.delays_s)

    @property
    def span_s(self) -> float:
        """Seconds from the first delay to the last attempt, without jitter: the most a delivery waits."""
        return sum(self.delays_s)

    def first_attempt(self, now: float, random: Callable[[], float] = _random.random) -> float:
        """When attempt 1 is due, for a webhook that became due at ``now``."""
        return now + self._jittered(self.delays_s[0], random)

    def next_attempt(
        self,
        attempt_no: int,
        now: float,
        result: AttemptResult,
        random: Callable[[], float] = _random.random,
    ) -> Decision:
        """What follows attempt ``attempt_no`` (1 for the first), which ended at ``now`` with ``result``."""
        if attempt_no < 1:
            raise ValueError(f"attempt_no counts from 1, got {attempt_no}")
        verdict = classify(result)
        if verdict is Verdict.DELIVERED:
            return Delivered()
        reason = result.describe()
        if verdict is Verdict.GONE:
            return GiveUp(f"{reason}: the receiver wants no more webhooks for this story", disabled=True)
        if attempt_no >= self.attempts:
            return GiveUp(f"{reason} after {attempt_no} attempts")
        delay = self._jittered(self.delays_s[attempt_no], random)
        if result.status in _HONOURS_RETRY_AFTER and result.retry_after is not None:
            asked = parse_retry_after(result.retry_after, now)
            if asked is not None:
                cap = self.retry_after_cap_s if self.retry_after_cap_s is not None else max(self.delays_s)
                delay = max(delay, min(asked, cap))
        return RetryAt(due=now + delay, reason=reason)

    def _jittered(self, delay: float, random: Callable[[], float]) -> float:
        if delay == 0 or self.jitter == 0:
            return delay
        return delay * (1.0 - self.jitter * random())


def classify(result: AttemptResult) -> Verdict:
    """2xx delivered, 410 gone, anything else (or no response at all) retried."""
    if result.status is not None and 200 <= result.status <= 299:
        return Verdict.DELIVERED
    if result.status == 410:
        return Verdict.GONE
    return Verdict.RETRY


def parse_retry_after(value: str, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or an HTTP date); ``None`` if neither."""
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # every HTTP date is GMT; the asctime form just does not say so
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - now)


def parse_schedule(text: str) -> tuple[float, ...]:
    """Delays in seconds from ``"0,5s,5m,30m,2h,5h,10h"`` (units ms, s, m, h, d; a bare number is seconds)."""
    delays = []
    for part in text.split(","):
        item = part.strip().lower()
        match = _DELAY.fullmatch(item)
        if match is None:
            raise ValueError(
                f"a retry delay is a number with an optional unit (ms, s, m, h, d), got {part!r}"
            )
        delays.append(float(match.group(1)) * _UNITS[match.group(2) or "s"])
    return tuple(delays)


def default_schedule() -> RetrySchedule:
    """The Standard Webhooks example's first seven steps with half jitter."""
    return RetrySchedule(parse_schedule(DEFAULT_SCHEDULE))
