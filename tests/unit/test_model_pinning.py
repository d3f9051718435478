"""hints.model pins one catalog model: it alone serves, on a tier that lists it, rules kept."""

from __future__ import annotations

import pytest

from tests.unit.policy_support import Fixed, make_catalog, make_request
from tierline.processors.errors import InputError, PolicyError
from tierline.processors.routing.decide import route
from tierline.processors.routing.experiments import Arm, Experiment
from tierline.processors.routing.policy import CascadeRules, Policy
from tierline.processors.routing.sensitivity_filter import SensitivityRules
from tierline.processors.routing.tier_rules import TenantRules, TierRules
from tierline.schemas import ErrorType, LatencyClass, Tier

CATALOG = make_catalog(
    tiers={
        Tier.ECONOMY: ["e1", "e2"],
        Tier.STANDARD: ["s1", "s2", "p1"],
        Tier.PREMIUM: ["p1", "p2"],
        Tier.BATCH: ["e1"],
    }
)


def test_a_pinned_model_is_the_only_candidate_on_its_tier() -> None:
    routed = route(make_request(model="s2"), Fixed(score=0.0), TierRules(), CATALOG)
    assert routed.candidates == ["s2"]
    assert routed.decision.tier is Tier.STANDARD  # the rules said economy; s2 is standard
    assert "model pinned: s2 (standard)" in routed.decision.reasons
    assert routed.cascade is None and routed.escalation is None


def test_the_decided_tier_is_kept_when_it_lists_the_model() -> None:
    premium = route(make_request(model="p1"), Fixed(score=0.9), TierRules(), CATALOG)
    assert (premium.decision.tier, premium.candidates) == (Tier.PREMIUM, ["p1"])
    cheap = route(make_request(model="p1"), Fixed(score=0.0), TierRules(), CATALOG)
    assert (cheap.decision.tier, cheap.candidates) == (Tier.STANDARD, ["p1"])


def test_a_pinned_model_on_the_batch_lane_needs_batch_latency() -> None:
    batch = make_request(model="e1", latency=LatencyClass.BATCH)
    assert route(batch, Fixed(), TierRules(), CATALOG).decision.tier is Tier.BATCH
    interactive = make_request(model="e1", latency=LatencyClass.INTERACTIVE)
    assert route(interactive, Fixed(), TierRules(), CATALOG).decision.tier is Tier.ECONOMY


def test_no_cascade_experiment_or_outage_escalation_swaps_the_model() -> None:
    policy = Policy(
        routing=TierRules(),
        cascade=CascadeRules(tasks=frozenset({"qa"})),
        experiments=(
            Experiment(
                name="x",
                task="qa",
                share=1.0,
                arms=(Arm(name="a", models=("e2",)), Arm(name="b", models=("s2",))),
            ),
        ),
    )
    unpinned = route(make_request(), Fixed(), policy, CATALOG, outage_escalation=True)
    assert unpinned.candidates in (["e2"], ["s2"])  # the experiment takes unpinned requests
    routed = route(make_request(model="e1"), Fixed(), policy, CATALOG, outage_escalation=True)
    assert routed.candidates == ["e1"]
    assert routed.cascade is None and routed.escalation is None


def test_an_unknown_model_is_refused_as_unknown_model() -> None:
    with pytest.raises(InputError) as refused:
        route(make_request(model="gpt-9"), Fixed(), TierRules(), CATALOG)
    assert refused.value.error_type is ErrorType.UNKNOWN_MODEL


def test_a_model_in_no_tier_has_no_candidate() -> None:
    catalog = make_catalog(tiers={t: ["e1"] for t in Tier})
    with pytest.raises(InputError) as refused:
        route(make_request(model="p2"), Fixed(), TierRules(), catalog)
    assert refused.value.error_type is ErrorType.NO_CANDIDATE


def test_the_hints_and_the_tenant_still_hold() -> None:
    with pytest.raises(PolicyError) as outside:
        route(make_request(model="p2", max_tier=Tier.STANDARD), Fixed(), TierRules(), CATALOG)
    assert outside.value.error_type is ErrorType.POLICY_DENIED
    tenant_rules = TierRules(tenants={"t": TenantRules(allowed_tiers=frozenset({Tier.ECONOMY}))})
    with pytest.raises(PolicyError):
        route(make_request(model="p2"), Fixed(), tenant_rules, CATALOG)


def test_a_pinned_model_must_fit_max_cost_usd() -> None:
    cheap_enough = make_request(model="e1", max_cost_usd="0.01")
    assert route(cheap_enough, Fixed(), TierRules(), CATALOG).candidates == ["e1"]
    with pytest.raises(PolicyError) as over:
        route(make_request(model="p2", max_cost_usd="0.0000001"), Fixed(), TierRules(), CATALOG)
    assert over.value.error_type is ErrorType.BUDGET_EXCEEDED


def test_sensitive_data_never_goes_to_an_unapproved_pinned_model() -> None:
    rules = SensitivityRules(approvals={"pii": frozenset({"openai"})})
    policy = Policy(routing=TierRules(), sensitivity=rules)
    mail = "Write to jane.doe@example.com about her order"
    assert route(make_request(mail, model="e1"), Fixed(), policy, CATALOG).candidates == ["e1"]
    with pytest.raises(PolicyError) as denied:
        route(make_request(mail, model="e2"), Fixed(), policy, CATALOG)  # anthropic
    assert denied.value.error_type is ErrorType.POLICY_DENIED
