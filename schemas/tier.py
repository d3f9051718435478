"""Capability tiers: the rungs a request is routed to.

economy < standard < premium is the capability ladder; `batch` is a lane for
requests whose latency class is `batch` (cheapest batch-priced models, no
latency promise). Hints such as `min_tier` compare along the ladder.
"""

from __future__ import annotations

from enum import StrEnum


class Tier(StrEnum):
    ECONOMY = "economy"
    STANDARD = "standard"
    PREMIUM = "premium"
    BATCH = "batch"

    @property
    def rank(self) -> int:
        """Position on the capability ladder; the batch lane ranks with economy."""
        return _RANK[self]

    @classmethod
    def ladder(cls) -> tuple[Tier, ...]:
        """The capability tiers, cheapest first."""
        return (cls.ECONOMY, cls.STANDARD, cls.PREMIUM)


_RANK = {Tier.ECONOMY: 0, Tier.BATCH: 0, Tier.STANDARD: 1, Tier.PREMIUM: 2}


class LatencyClass(StrEnum):
    INTERACTIVE = "interactive"
    STANDARD = "standard"
    BATCH = "batch"
