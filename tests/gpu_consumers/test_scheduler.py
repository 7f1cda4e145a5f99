from __future__ import annotations

from collections import Counter

import pytest

from gpu_consumers.scheduler import TierScheduler
from schemas.records import Tier

P, F = Tier.PREMIUM, Tier.FREE
BOTH = (P, F)


def picks(scheduler: TierScheduler, ready: tuple[Tier, ...], count: int) -> list[Tier | None]:
    return [scheduler.choose(ready) for _ in range(count)]


def test_both_backlogged_runs_three_premium_per_free_in_a_smooth_order() -> None:
    assert picks(TierScheduler(), BOTH, 8) == [P, P, F, P] * 2


def test_ratio_follows_configured_weights() -> None:
    scheduler = TierScheduler({P: 5, F: 2})
    counts = Counter(picks(scheduler, BOTH, 700))
    assert counts == {P: 500, F: 200}


def test_free_never_waits_more_than_weight_premium_batches() -> None:
    order = picks(TierScheduler(), BOTH, 400)
    gaps = [len(run) for run in "".join("p" if t is P else "f" for t in order).split("f")[1:-1]]
    assert max(gaps) <= 3


def test_an_empty_tier_gives_its_share_away() -> None:
    scheduler = TierScheduler()
    assert picks(scheduler, (F,), 5) == [F] * 5
    assert picks(scheduler, (P,), 5) == [P] * 5


def test_an_idle_tier_does_not_hoard_credit() -> None:
    scheduler = TierScheduler()
    picks(scheduler, (F,), 50)  # premium idle for a long time
    assert picks(scheduler, BOTH, 4) == [P, P, F, P]


def test_nothing_ready_chooses_nothing() -> None:
    assert TierScheduler().choose(()) is None


def test_weights_must_be_positive() -> None:
    with pytest.raises(ValueError, match="weights\\['free'\\] must be at least 1, got 0"):
        TierScheduler({P: 3, F: 0})
