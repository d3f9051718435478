"""Policy: score to tier, hints always hold, low confidence climbs, batch lane."""

from __future__ import annotations

import pytest

from tierline.processors.routing.classifiers import Classification
from tierline.processors.routing.tier_rules import Thresholds, TierRules
from tierline.schemas import RouteRequest, Tier


def req(**hints: object) -> RouteRequest:
    return RouteRequest.model_validate(
        {"id": "r", "tenant": "t", "messages": [{"role": "user", "content": "hi"}], "hints": hints}
    )


@pytest.mark.parametrize(
    ("score", "tier"),
    [
        (0.0, Tier.ECONOMY),
        (0.34, Tier.ECONOMY),
        (0.35, Tier.STANDARD),
        (0.69, Tier.STANDARD),
        (0.7, Tier.PREMIUM),
        (1.0, Tier.PREMIUM),
    ],
)
def test_score_cuts_into_tiers(score: float, tier: Tier) -> None:
    decision = TierRules().decide(req(), Classification("qa", score))
    assert decision.tier == tier
    assert any("score" in r for r in decision.reasons)


def test_min_and_max_tier_hints_hold() -> None:
    policy = TierRules()
    assert policy.decide(req(min_tier="premium"), Classification("qa", 0.0)).tier == Tier.PREMIUM
    assert policy.decide(req(max_tier="economy"), Classification("qa", 0.99)).tier == Tier.ECONOMY
    assert (
        policy.decide(req(min_tier="standard", max_tier="standard"), Classification("qa", 0.9)).tier
        == Tier.STANDARD
    )


def test_low_confidence_climbs_one_tier() -> None:
    policy = TierRules(confidence_floor=0.5)
    decision = policy.decide(req(), Classification("qa", 0.1, confidence=0.2))
    assert decision.tier == Tier.STANDARD
    assert any("confidence" in r for r in decision.reasons)
    assert policy.decide(req(), Classification("qa", 0.1, confidence=0.9)).tier == Tier.ECONOMY


def test_batch_latency_uses_the_batch_lane_only_for_economy_work() -> None:
    policy = TierRules()
    assert policy.decide(req(latency="batch"), Classification("qa", 0.1)).tier == Tier.BATCH
    assert policy.decide(req(latency="batch"), Classification("qa", 0.9)).tier == Tier.PREMIUM


def test_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValueError):
        Thresholds(standard=0.8, premium=0.5)
