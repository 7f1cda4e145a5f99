from __future__ import annotations

import pytest

from ops.runtime.supervisor import RestartBackoff


def test_a_crash_is_restarted_quickly_and_a_crash_loop_ever_later() -> None:
    backoff = RestartBackoff(first_s=0.5, max_s=30.0, stable_s=60.0)
    streak, delays = 0, []
    for _ in range(8):
        streak = backoff.streak(streak, lived_s=3.0)  # dies soon after every start
        delays.append(backoff.delay(streak))
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    # A child that ran a while before crashing is healthy again: the next restart is quick.
    assert backoff.delay(backoff.streak(streak, lived_s=600.0)) == 0.5
    with pytest.raises(ValueError):
        backoff.delay(0)
