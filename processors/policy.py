"""Routing policy: from a classifier's score to a tier, with the request's hints kept.

The score is cut by two thresholds into economy / standard / premium. Then the
hints clamp it (`min_tier`, `max_tier` always hold), a low-confidence verdict
climbs one rung, and `latency=batch` work that lands on economy goes to the
batch lane.
"""

from __future__ import annotations

from dataclasses import dataclass

from processors.classifier import Classification
from schemas import RouteRequest, RoutingDecision, Tier
from schemas.tier import LatencyClass


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Scores at or above `standard` leave economy; at or above `premium` go premium."""

    standard: float = 0.35
    premium: float = 0.7

    def __post_init__(self) -> None:
        if not 0 <= self.standard <= self.premium <= 1:
            raise ValueError(f"thresholds must satisfy 0 <= standard <= premium <= 1: {self}")

    def tier_for(self, score: float) -> Tier:
        if score >= self.premium:
            return Tier.PREMIUM
        if score >= self.standard:
            return Tier.STANDARD
        return Tier.ECONOMY


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    thresholds: Thresholds = Thresholds()
    #: below this confidence, a verdict climbs one tier (0 disables)
    confidence_floor: float = 0.0

    def decide(self, request: RouteRequest, verdict: Classification) -> RoutingDecision:
        reasons = list(verdict.reasons)
        tier = self.thresholds.tier_for(verdict.score)
        reasons.append(f"score {verdict.score:.2f} -> {tier}")
        if verdict.confidence < self.confidence_floor and tier is not Tier.PREMIUM:
            tier = Tier.ladder()[tier.rank + 1]
            reasons.append(f"confidence {verdict.confidence:.2f} below floor: up to {tier}")
        hints = request.hints
        if hints.min_tier is not None and tier.rank < hints.min_tier.rank:
            tier = _capability(hints.min_tier)
            reasons.append(f"min_tier hint: {tier}")
        if hints.max_tier is not None and tier.rank > hints.max_tier.rank:
            tier = _capability(hints.max_tier)
            reasons.append(f"max_tier hint: {tier}")
        if hints.latency is LatencyClass.BATCH and tier is Tier.ECONOMY:
            tier = Tier.BATCH
            reasons.append("latency=batch: batch lane")
        return RoutingDecision(
            task=verdict.task,
            tier=tier,
            score=min(1.0, max(0.0, verdict.score)),
            confidence=min(1.0, max(0.0, verdict.confidence)),
            reasons=reasons,
        )


def _capability(tier: Tier) -> Tier:
    """A hint naming the batch lane means its rung on the ladder: economy."""
    return Tier.ECONOMY if tier is Tier.BATCH else tier
