"""route(): budgets, experiments and cascades on top of the tier rules; the hints always hold."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.policy_support import Fixed, make_catalog, make_request
from tierline.processors.errors import PolicyError
from tierline.processors.pricing.catalog import Catalog
from tierline.processors.routing import cost_cap
from tierline.processors.routing.decide import route
from tierline.processors.routing.experiments import Arm, Experiment
from tierline.processors.routing.policy import CascadeRules, Policy
from tierline.processors.routing.tier_rules import TenantRules, TierFloor, TierRules
from tierline.schemas import ErrorType, RoutedRequest, RouteRequest, Tier

CATALOG = make_catalog()
PROMPT = "x" * 100  # 25 tokens + 4 for the message: 29 prompt tokens


def estimate(request: RouteRequest, model: str) -> Decimal:
    return cost_cap.estimate(request, CATALOG.model(model))


def test_without_rules_routing_is_as_before() -> None:
    routed = route(make_request(), Fixed(score=0.5), TierRules(), CATALOG)
    assert routed.decision.tier is Tier.STANDARD
    assert routed.candidates == list(CATALOG.candidates(Tier.STANDARD))
    assert routed.cascade is None


def test_the_estimate_is_prompt_times_input_plus_output_times_output() -> None:
    request = make_request(PROMPT, params={"max_tokens": 1000})
    assert cost_cap.prompt_tokens(request) == 29
    # p1: 29 x $5/1M + 1000 x $20/1M
    assert estimate(request, "p1") == Decimal("0.020145000")
    unbounded = make_request(PROMPT)
    assert cost_cap.output_tokens(unbounded) == cost_cap.DEFAULT_OUTPUT_TOKENS
    assert cost_cap.estimate(unbounded, CATALOG.model("p1"), 10) == Decimal("0.000345000")


def test_a_tier_over_budget_steps_down_and_drops_dear_candidates() -> None:
    request = make_request(PROMPT, max_cost_usd="0.0035", params={"max_tokens": 1000})
    routed = route(request, Fixed(score=0.9), TierRules(), CATALOG)
    # premium's cheapest is $0.020; standard's s2 is $0.0030 and s1 $0.0040 (over budget)
    assert routed.decision.tier is Tier.STANDARD
    assert routed.candidates == ["s2"]
    assert any("premium over budget: standard" in r for r in routed.decision.reasons)


def test_nothing_within_budget_is_budget_exceeded() -> None:
    request = make_request(PROMPT, max_cost_usd="0.0000001", params={"max_tokens": 1000})
    with pytest.raises(PolicyError) as caught:
        route(request, Fixed(score=0.9), TierRules(), CATALOG)
    assert caught.value.error_type is ErrorType.BUDGET_EXCEEDED
    assert "estimated at" in caught.value.message


def test_the_budget_never_steps_below_min_tier() -> None:
    request = make_request(
        PROMPT, max_cost_usd="0.005", min_tier="premium", params={"max_tokens": 1000}
    )
    with pytest.raises(PolicyError) as caught:
        route(request, Fixed(score=0.0), TierRules(), CATALOG)
    assert caught.value.error_type is ErrorType.BUDGET_EXCEEDED


def test_a_batch_request_steps_down_to_the_batch_lane() -> None:
    request = make_request(
        PROMPT, max_cost_usd="0.001", latency="batch", params={"max_tokens": 1000}
    )
    routed = route(request, Fixed(score=0.9), TierRules(), CATALOG)
    assert routed.decision.tier is Tier.BATCH
    assert routed.candidates == ["e1"]


# ------------------------------------------------------------------ experiments in route()

TRIAGE = Experiment(
    name="triage",
    task="classification",
    share=1.0,
    arms=(Arm("cheap", ("e1",)), Arm("strong", ("p1",), tier=Tier.PREMIUM)),
)


def test_an_experiment_gives_the_arm_and_records_it() -> None:
    policy = Policy(experiments=(TRIAGE,))
    arms = set()
    for i in range(40):
        routed = route(make_request(rid=f"q{i}"), Fixed("classification"), policy, CATALOG)
        reason = next(r for r in routed.decision.reasons if r.startswith("experiment="))
        arm = reason.split("arm=")[1]
        arms.add(arm)
        if arm == "cheap":
            assert routed.candidates == ["e1"] and routed.decision.tier is Tier.ECONOMY
        else:
            assert routed.candidates == ["p1"] and routed.decision.tier is Tier.PREMIUM
    assert arms == {"cheap", "strong"}
    other = route(make_request(rid="q1"), Fixed("qa"), policy, CATALOG)
    assert not any("experiment" in r for r in other.decision.reasons)


def test_an_arm_outside_the_hints_is_skipped_not_forced() -> None:
    policy = Policy(experiments=(TRIAGE,))
    for i in range(40):
        request = make_request(rid=f"q{i}", max_tier="standard")
        routed = route(request, Fixed("classification"), policy, CATALOG)
        assert routed.decision.tier is Tier.ECONOMY
        if routed.candidates != ["e1"]:
            assert any("experiment triage skipped" in r for r in routed.decision.reasons)


# ------------------------------------------------------------------ cascades in route()


def test_a_cascade_task_starts_cheap_and_escalates_to_the_chosen_tier() -> None:
    policy = Policy(cascade=CascadeRules(frozenset({"extraction"})))
    routed = route(make_request(), Fixed("extraction", score=0.9), policy, CATALOG)
    assert routed.decision.tier is Tier.ECONOMY
    assert routed.candidates == list(CATALOG.candidates(Tier.ECONOMY))
    assert routed.cascade is not None
    assert routed.cascade.tier is Tier.PREMIUM
    assert routed.cascade.candidates == list(CATALOG.candidates(Tier.PREMIUM))
    assert any(r.startswith("cascade: economy first") for r in routed.decision.reasons)


def test_a_cheap_decision_escalates_to_the_next_tier_up() -> None:
    policy = Policy(cascade=CascadeRules(frozenset({"extraction"})))
    routed = route(make_request(), Fixed("extraction", score=0.0), policy, CATALOG)
    assert routed.decision.tier is Tier.ECONOMY
    assert routed.cascade is not None and routed.cascade.tier is Tier.STANDARD


def test_no_cascade_without_room_above_or_on_the_batch_lane() -> None:
    policy = Policy(cascade=CascadeRules(frozenset({"extraction"})))
    capped = route(make_request(max_tier="economy"), Fixed("extraction"), policy, CATALOG)
    assert capped.cascade is None
    batch = route(make_request(latency="batch"), Fixed("extraction"), policy, CATALOG)
    assert batch.cascade is None and batch.decision.tier is Tier.BATCH


def test_a_cascade_must_fit_the_budget_with_both_calls() -> None:
    policy = Policy(cascade=CascadeRules(frozenset({"extraction"})))
    request = make_request(PROMPT, max_cost_usd="0.0045", params={"max_tokens": 1000})
    routed = route(request, Fixed("extraction", score=0.5), policy, CATALOG)
    # economy e2 ($0.0008) + standard s2 ($0.0030) fits; + s1 ($0.0040) does not
    assert routed.cascade is not None
    assert routed.cascade.candidates == ["s2"]
    dearest_first = max(estimate(request, m) for m in routed.candidates)
    for model in routed.cascade.candidates:
        assert dearest_first + estimate(request, model) <= Decimal("0.0045")


# ------------------------------------------------------------------ the property

TIER_OR_NONE = st.sampled_from([None, Tier.ECONOMY, Tier.STANDARD, Tier.PREMIUM, Tier.BATCH])
LADDER_SETS = st.frozensets(st.sampled_from(list(Tier)), min_size=1).filter(
    lambda s: bool(s & set(Tier.ladder()))
)
MODEL_NAMES = sorted(CATALOG.models)


@st.composite
def experiments(draw: st.DrawFn) -> tuple[Experiment, ...]:
    found = []
    for index in range(draw(st.integers(0, 2))):
        arms = tuple(
            Arm(
                f"a{i}",
                tuple(draw(st.lists(st.sampled_from(MODEL_NAMES + ["ghost"]), min_size=1))),
                tier=draw(TIER_OR_NONE),
            )
            for i in range(2)
        )
        found.append(
            Experiment(
                f"x{index}", draw(st.sampled_from(["qa", "code"])), draw(st.floats(0, 1)), arms
            )
        )
    return tuple(found)


@st.composite
def cases(draw: st.DrawFn) -> tuple[RouteRequest, Fixed, Policy]:
    low, high = draw(TIER_OR_NONE), draw(TIER_OR_NONE)
    if low is not None and high is not None and low.rank > high.rank:
        low, high = high, low
    cost = draw(st.none() | st.decimals("0.000001", "0.05", places=6))
    request = make_request(
        "y" * draw(st.integers(1, 4000)),
        rid=draw(st.text("abcdef0123", min_size=1, max_size=8)),
        tenant=draw(st.sampled_from(["t", "acme"])),
        min_tier=low,
        max_tier=high,
        max_cost_usd=str(cost) if cost is not None else None,
        latency=draw(st.sampled_from(["interactive", "standard", "batch"])),
        params={"max_tokens": draw(st.none() | st.integers(1, 4000))},
    )
    verdict = Fixed(
        draw(st.sampled_from(["qa", "code"])), draw(st.floats(0, 1)), draw(st.floats(0, 1))
    )
    tenants = {"acme": TenantRules(allowed_tiers=draw(LADDER_SETS))} if draw(st.booleans()) else {}
    floors = (
        (TierFloor("code", draw(st.sampled_from(Tier.ladder()))),) if draw(st.booleans()) else ()
    )
    policy = Policy(
        routing=TierRules(confidence_floor=draw(st.floats(0, 1)), tenants=tenants, floors=floors),
        cascade=CascadeRules(frozenset(draw(st.sets(st.sampled_from(["qa", "code"]))))),
        experiments=draw(experiments()),
    )
    return request, verdict, policy


def _rank_ok(request: RouteRequest, tier: Tier) -> bool:
    hints = request.hints
    return (hints.min_tier is None or tier.rank >= hints.min_tier.rank) and (
        hints.max_tier is None or tier.rank <= hints.max_tier.rank
    )


def _allowed(policy: Policy, request: RouteRequest, tier: Tier) -> bool:
    return policy.routing.rules_for(request.tenant).allows(tier)


def _cheapest_possible(request: RouteRequest, policy: Policy, catalog: Catalog) -> Decimal:
    options = policy.routing.options(request)
    tiers = [policy.routing.lane(request, t) for t in options]
    return min(
        cost_cap.estimate(request, catalog.model(m)) for t in tiers for m in catalog.candidates(t)
    )


@settings(max_examples=400, deadline=None)
@given(cases())
def test_hints_always_hold(case: tuple[RouteRequest, Fixed, Policy]) -> None:
    request, verdict, policy = case
    try:
        routed = route(request, verdict, policy, CATALOG)
    except PolicyError as error:
        if error.error_type is ErrorType.BUDGET_EXCEEDED:
            assert request.hints.max_cost_usd is not None
            assert _cheapest_possible(request, policy, CATALOG) > request.hints.max_cost_usd
        else:
            assert error.error_type is ErrorType.POLICY_DENIED
            assert policy.routing.options(request) == []
        return
    _check(request, policy, routed)


def _check(request: RouteRequest, policy: Policy, routed: RoutedRequest) -> None:
    tiers = [routed.decision.tier] + ([routed.cascade.tier] if routed.cascade else [])
    for tier in tiers:
        assert _rank_ok(request, tier), (tier, request.hints)
        assert _allowed(policy, request, tier)
    if request.hints.latency.value != "batch":
        assert Tier.BATCH not in tiers
    assert routed.candidates and all(m in CATALOG.models for m in routed.candidates)
    limit = request.hints.max_cost_usd
    if limit is not None:
        first = [estimate(request, m) for m in routed.candidates]
        assert max(first) <= limit
        if routed.cascade is not None:
            for model in routed.cascade.candidates:
                assert max(first) + estimate(request, model) <= limit
