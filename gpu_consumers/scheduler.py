"""The tier scheduler: which tier's batch runs next, by weight, among the tiers that have work.

Smooth weighted round-robin (the nginx upstream algorithm) over the tiers with a batch buffered: each
turn every eligible tier earns its weight, the richest runs and pays the eligible total. With both
tiers backlogged and weights 3:1 the order is P P F P, repeating, so free waits at most three premium
batches (never starves); a tier with nothing buffered is skipped and earns nothing, so its share goes
to the other (work-conserving) and an idle tier cannot hoard credit for a burst later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from schemas.records import Tier

DEFAULT_WEIGHTS: Mapping[Tier, int] = {Tier.PREMIUM: 3, Tier.FREE: 1}


class TierScheduler:
    """Picks the next tier to serve; pure state, no I/O."""

    def __init__(self, weights: Mapping[Tier, int] = DEFAULT_WEIGHTS) -> None:
        for tier, weight in weights.items():
            if weight < 1:
                raise ValueError(f"weights[{tier.value!r}] must be at least 1, got {weight}")
        if not weights:
            raise ValueError("weights must name at least one tier")
        self.weights = dict(weights)
        self._credit = {tier: 0 for tier in self.weights}

    def choose(self, ready: Iterable[Tier]) -> Tier | None:
        """The tier to serve next among ``ready`` (tiers with a batch buffered), or ``None`` if none."""
        ready = set(ready)
        eligible = [tier for tier in self.weights if tier in ready]
        if not eligible:
            return None
        for tier in eligible:
            self._credit[tier] += self.weights[tier]
        # Ties go to the tier listed first in the weights (premium by default): max keeps the first.
        chosen = max(eligible, key=lambda tier: self._credit[tier])
        self._credit[chosen] -= sum(self.weights[tier] for tier in eligible)
        return chosen
