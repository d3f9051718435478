"""Tier rules beyond the thresholds: tenant overrides, allowed tiers, floors, escalation."""

from __future__ import annotations

import pytest

from tests.unit.policy_support import make_request
from tierline.processors.errors import PolicyError
from tierline.processors.routing.classifiers import Classification
from tierline.processors.routing.tier_rules import TenantRules, Thresholds, TierFloor, TierRules
from tierline.schemas import ErrorType, Tier


def test_a_tenant_brings_its_own_thresholds() -> None:
    policy = TierRules(tenants={"acme": TenantRules(thresholds=Thresholds(0.6, 0.9))})
    verdict = Classification("qa", 0.5)
    assert policy.decide(make_request(tenant="other"), verdict).tier is Tier.STANDARD
    decision = policy.decide(make_request(tenant="acme"), verdict)
    assert decision.tier is Tier.ECONOMY
    assert "score 0.50 -> economy (tenant thresholds)" in decision.reasons


def test_a_tenant_brings_its_own_confidence_floor() -> None:
    policy = TierRules(confidence_floor=0.0, tenants={"careful": TenantRules(confidence_floor=0.8)})
    unsure = Classification("qa", 0.1, confidence=0.5)
    assert policy.decide(make_request(tenant="other"), unsure).tier is Tier.ECONOMY
    decision = policy.decide(make_request(tenant="careful"), unsure)
    assert decision.tier is Tier.STANDARD
    assert any("below floor" in r for r in decision.reasons)


def test_low_confidence_climbs_exactly_one_rung() -> None:
    policy = TierRules(confidence_floor=0.5)
    assert policy.decide(make_request(), Classification("qa", 0.5, 0.1)).tier is Tier.PREMIUM
    assert policy.decide(make_request(), Classification("qa", 0.9, 0.1)).tier is Tier.PREMIUM


def test_a_disallowed_tier_moves_to_the_nearest_allowed_one_above_first() -> None:
    rules = TenantRules(allowed_tiers=frozenset({Tier.ECONOMY, Tier.PREMIUM}))
    policy = TierRules(tenants={"acme": rules})
    decision = policy.decide(make_request(tenant="acme"), Classification("qa", 0.5))
    assert decision.tier is Tier.PREMIUM
    assert any("tenant acme allows" in r for r in decision.reasons)
    # nothing allowed above: the nearest below
    policy = TierRules(tenants={"acme": TenantRules(allowed_tiers=frozenset({Tier.ECONOMY}))})
    assert policy.decide(make_request(tenant="acme"), Classification("qa", 0.99)).tier is (
        Tier.ECONOMY
    )


def test_allowed_tiers_never_break_the_hints() -> None:
    policy = TierRules(tenants={"acme": TenantRules(allowed_tiers=frozenset({Tier.ECONOMY}))})
    with pytest.raises(PolicyError) as caught:
        policy.decide(make_request(tenant="acme", min_tier="standard"), Classification("qa", 0.0))
    assert caught.value.error_type is ErrorType.POLICY_DENIED
    allowed = frozenset({Tier.ECONOMY, Tier.PREMIUM})
    policy = TierRules(tenants={"acme": TenantRules(allowed_tiers=allowed)})
    decision = policy.decide(
        make_request(tenant="acme", max_tier="standard"), Classification("qa", 0.99)
    )
    assert decision.tier is Tier.ECONOMY  # premium is above the hint: the allowed one below


def test_the_batch_lane_needs_the_tenant_to_allow_it() -> None:
    verdict = Classification("qa", 0.1)
    assert TierRules().decide(make_request(latency="batch"), verdict).tier is Tier.BATCH
    no_batch = TenantRules(allowed_tiers=frozenset({Tier.ECONOMY, Tier.STANDARD}))
    policy = TierRules(tenants={"acme": no_batch})
    assert policy.decide(make_request(tenant="acme", latency="batch"), verdict).tier is (
        Tier.ECONOMY
    )


def test_floors_lift_matching_requests_and_hints_still_win() -> None:
    policy = TierRules(
        floors=(
            TierFloor("code", Tier.STANDARD),
            TierFloor("extraction", Tier.PREMIUM, feature="contracts"),
        )
    )
    low = 0.05
    code = policy.decide(make_request(), Classification("code", low))
    assert code.tier is Tier.STANDARD
    assert "floor task=code: up to standard" in code.reasons
    assert policy.decide(make_request(), Classification("qa", low)).tier is Tier.ECONOMY
    assert policy.decide(make_request(), Classification("extraction", low)).tier is Tier.ECONOMY
    contracts = make_request(feature="contracts")
    assert policy.decide(contracts, Classification("extraction", low)).tier is Tier.PREMIUM
    capped = make_request(feature="contracts", max_tier="standard")
    assert policy.decide(capped, Classification("extraction", low)).tier is Tier.STANDARD


def test_floors_can_be_per_tenant() -> None:
    policy = TierRules(floors=(TierFloor("qa", Tier.PREMIUM, tenant="vip"),))
    assert policy.decide(make_request(tenant="vip"), Classification("qa", 0)).tier is Tier.PREMIUM
    assert policy.decide(make_request(tenant="t"), Classification("qa", 0)).tier is Tier.ECONOMY


def test_options_are_the_tiers_hints_and_tenant_allow() -> None:
    rules = TenantRules(allowed_tiers=frozenset({Tier.ECONOMY, Tier.PREMIUM, Tier.BATCH}))
    policy = TierRules(tenants={"acme": rules})
    assert policy.options(make_request()) == [Tier.ECONOMY, Tier.STANDARD, Tier.PREMIUM]
    assert policy.options(make_request(tenant="acme")) == [Tier.ECONOMY, Tier.PREMIUM]
    assert policy.options(make_request(tenant="acme", min_tier="standard")) == [Tier.PREMIUM]


def test_bad_rules_are_refused() -> None:
    with pytest.raises(ValueError):
        TenantRules(allowed_tiers=frozenset({Tier.BATCH}))
    with pytest.raises(ValueError):
        TenantRules(confidence_floor=1.5)
    with pytest.raises(ValueError):
        TierFloor("qa", Tier.BATCH)
