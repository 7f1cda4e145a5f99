"""The webhook retry schedule: verdicts, delays, jitter, Retry-After, and the schedule setting's syntax."""

from __future__ import annotations

import pytest

from streams.webhook_schedule import (
    DEFAULT_SCHEDULE,
    AttemptResult,
    Delivered,
    GiveUp,
    RetryAt,
    RetrySchedule,
    Verdict,
    classify,
    default_schedule,
    parse_retry_after,
    parse_schedule,
)

NOW = 1_700_000_000.0
EXACT = RetrySchedule(parse_schedule(DEFAULT_SCHEDULE), jitter=0.0)
HTTP_500 = AttemptResult(status=500)
TIMEOUT = AttemptResult(error="read timeout after 15 s")


def _top() -> float:
    return 1.0  # the random source's largest draw: the shortest jittered wait


def _bottom() -> float:
    return 0.0


def test_the_default_schedule_is_seven_attempts_over_about_17_and_a_half_hours() -> None:
    schedule = default_schedule()
    assert schedule.delays_s == (0, 5, 300, 1800, 7200, 18000, 36000)
    assert schedule.attempts == 7
    assert schedule.span_s == 17 * 3600 + 35 * 60 + 5
    assert schedule.jitter == 0.5


@pytest.mark.parametrize(
    ("result", "verdict"),
    [
        (AttemptResult(status=200), Verdict.DELIVERED),
        (AttemptResult(status=204), Verdict.DELIVERED),
        (AttemptResult(status=299), Verdict.DELIVERED),
        (AttemptResult(status=410), Verdict.GONE),
        (AttemptResult(status=500), Verdict.RETRY),
        (AttemptResult(status=502), Verdict.RETRY),
        (AttemptResult(status=503), Verdict.RETRY),
        (AttemptResult(status=429), Verdict.RETRY),
        (AttemptResult(status=301), Verdict.RETRY),  # redirects are not followed
        (AttemptResult(status=400), Verdict.RETRY),
        (AttemptResult(status=401), Verdict.RETRY),  # a receiver that has not picked up a new secret yet
        (AttemptResult(status=404), Verdict.RETRY),
        (AttemptResult(status=100), Verdict.RETRY),
        (TIMEOUT, Verdict.RETRY),
        (AttemptResult(error="connection refused"), Verdict.RETRY),
        (AttemptResult(), Verdict.RETRY),
    ],
)
def test_classify(result: AttemptResult, verdict: Verdict) -> None:
    assert classify(result) is verdict


def test_a_failing_receiver_walks_the_whole_schedule_then_the_delivery_gives_up() -> None:
    # A recorded sequence: every attempt answers 500; each try is due the planned delay after the last.
    now, dues = NOW, []
    for attempt_no in range(1, 7):
        decision = EXACT.next_attempt(attempt_no, now, HTTP_500)
        assert isinstance(decision, RetryAt) and decision.reason == "HTTP 500"
        dues.append(decision.due - now)
        now = decision.due
    assert dues == [5, 300, 1800, 7200, 18000, 36000]
    assert EXACT.next_attempt(7, now, HTTP_500) == GiveUp("HTTP 500 after 7 attempts")


def test_success_and_gone_end_at_once() -> None:
    assert EXACT.next_attempt(1, NOW, AttemptResult(status=202)) == Delivered()
    gone = EXACT.next_attempt(1, NOW, AttemptResult(status=410))
    assert isinstance(gone, GiveUp) and gone.disabled and gone.reason.startswith("HTTP 410")
    assert EXACT.next_attempt(7, NOW, AttemptResult(status=200)) == Delivered()  # even on the last try


def test_the_first_attempt_is_due_at_once() -> None:
    assert default_schedule().first_attempt(NOW, random=_top) == NOW
    assert RetrySchedule((10.0, 5.0), jitter=0.0).first_attempt(NOW) == NOW + 10


def test_a_timeout_is_retried_and_named() -> None:
    decision = EXACT.next_attempt(2, NOW, TIMEOUT)
    assert decision == RetryAt(due=NOW + 300, reason="read timeout after 15 s")


def test_jitter_keeps_each_wait_between_its_floor_and_its_plan() -> None:
    half = RetrySchedule((0, 100, 1000), jitter=0.5)
    full = RetrySchedule((0, 100, 1000), jitter=1.0)
    assert half.next_attempt(1, NOW, HTTP_500, random=_bottom) == RetryAt(NOW + 100, "HTTP 500")
    assert half.next_attempt(1, NOW, HTTP_500, random=_top) == RetryAt(NOW + 50, "HTTP 500")
    assert half.next_attempt(2, NOW, HTTP_500, random=lambda: 0.25) == RetryAt(NOW + 875, "HTTP 500")
    assert full.next_attempt(1, NOW, HTTP_500, random=_top) == RetryAt(NOW, "HTTP 500")


def test_jitter_uses_the_random_source_it_is_given() -> None:
    draws = iter([0.1, 0.9])
    schedule = RetrySchedule((0, 1000, 1000), jitter=1.0)
    first = schedule.next_attempt(1, NOW, HTTP_500, random=lambda: next(draws))
    second = schedule.next_attempt(2, NOW, HTTP_500, random=lambda: next(draws))
    assert isinstance(first, RetryAt) and isinstance(second, RetryAt)
    assert (first.due - NOW, second.due - NOW) == pytest.approx((900, 100))


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured_for_429_and_503(status: int) -> None:
    asked = EXACT.next_attempt(1, NOW, AttemptResult(status=status, retry_after="120"))
    assert asked == RetryAt(NOW + 120, f"HTTP {status}")  # longer than the planned 5 s
    shorter = EXACT.next_attempt(3, NOW, AttemptResult(status=status, retry_after="1"))
    assert shorter == RetryAt(NOW + 1800, f"HTTP {status}")  # never sooner than the schedule


def test_retry_after_is_capped() -> None:
    a_week = AttemptResult(status=429, retry_after=str(7 * 86400))
    assert EXACT.next_attempt(1, NOW, a_week) == RetryAt(NOW + 36000, "HTTP 429")  # the longest step
    capped = RetrySchedule((0, 5, 60), jitter=0.0, retry_after_cap_s=600)
    assert capped.next_attempt(1, NOW, a_week) == RetryAt(NOW + 600, "HTTP 429")


def test_retry_after_on_other_statuses_and_garbage_is_ignored() -> None:
    assert EXACT.next_attempt(1, NOW, AttemptResult(status=500, retry_after="999")) == RetryAt(
        NOW + 5, "HTTP 500"
    )
    assert EXACT.next_attempt(1, NOW, AttemptResult(status=429, retry_after="soon")) == RetryAt(
        NOW + 5, "HTTP 429"
    )


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after(" 0 ", now) == 0
    assert parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now) == 120
    assert parse_retry_after("Wednesday, 21-Oct-15 07:30:00 GMT", now) == 120
    assert parse_retry_after("Wed Oct 21 07:30:00 2015", now) == 120  # asctime: GMT unsaid
    assert parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now) == 0  # a date past: at once
    for garbage in ("", "soon", "-5", "1.5", "Wed, 99 Oct 2015"):
        assert parse_retry_after(garbage, now) is None, garbage


@pytest.mark.parametrize(
    ("text", "delays"),
    [
        ("0,5s,5m,30m,2h,5h,10h", (0, 5, 300, 1800, 7200, 18000, 36000)),
        ("0, 10, 1.5m , 1d", (0, 10, 90, 86400)),
        ("250ms,2S", (0.25, 2)),
        ("30", (30,)),
    ],
)
def test_parse_schedule(text: str, delays: tuple[float, ...]) -> None:
    assert parse_schedule(text) == pytest.approx(delays)


@pytest.mark.parametrize("text", ["", "5s,,5m", "5x", "-5s", "five", "5 s", "1e3"])
def test_a_malformed_schedule_names_the_bad_part(text: str) -> None:
    with pytest.raises(ValueError, match="retry delay"):
        parse_schedule(text)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"delays_s": ()}, "at least one"),
        ({"delays_s": (0, -1)}, ">= 0"),
        ({"delays_s": (0, float("inf"))}, "finite"),
        ({"delays_s": (0,), "jitter": 1.5}, "jitter"),
        ({"delays_s": (0,), "retry_after_cap_s": -1}, "retry_after_cap_s"),
    ],
)
def test_a_schedule_refuses_nonsense(kwargs, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        RetrySchedule(**kwargs)


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        EXACT.next_attempt(0, NOW, HTTP_500)
