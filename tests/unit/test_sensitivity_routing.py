"""Sensitive data reaches approved providers only; none approved is `policy_denied`, no fallback."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.policy_support import Fixed, make_catalog, make_request
from tierline.processors.errors import PolicyError
from tierline.processors.pricing.catalog import Catalog
from tierline.processors.routing.decide import route
from tierline.processors.routing.experiments import Arm, Experiment
from tierline.processors.routing.policy import CascadeRules, Policy
from tierline.processors.routing.sensitivity import detect_sensitive
from tierline.processors.routing.sensitivity_filter import (
    ANY_PROVIDER,
    RULES_OFF,
    SAFE_DEFAULTS,
    SensitivityRules,
    request_classes,
    screen,
)
from tierline.processors.routing.tier_rules import TierRules
from tierline.schemas import ErrorType, Tier

PROVIDERS = ["openai", "anthropic", "google", "mistral", "azure"]
CLASSES = ["pii", "financial", "secret", "hipaa"]
RULES = SensitivityRules(
    approvals={
        "pii": frozenset({"openai", "anthropic"}),
        "financial": frozenset({"openai"}),
        "secret": frozenset(),
    }
)
CATALOG = make_catalog()


def providers_of(catalog: Catalog) -> dict[str, str]:
    return {name: spec.provider for name, spec in catalog.models.items()}


def approved(rules: SensitivityRules, cls: str, provider: str) -> bool:
    """The rule, restated independently of the code under test: secrets need a named approval."""
    if cls not in rules.approvals:
        return rules.unlisted == "allow" and cls != "secret"
    return provider in rules.approvals[cls] or ANY_PROVIDER in rules.approvals[cls]


def test_detected_classes_and_the_hint_both_count() -> None:
    assert request_classes(make_request("mail me at jane@example.com"), RULES) == {"pii"}
    assert request_classes(make_request("hello", sensitivity="HIPAA"), RULES) == {"hipaa"}
    assert request_classes(make_request("card 4111 1111 1111 1111"), RULES) == {
        "pii",
        "financial",
    }
    assert request_classes(make_request("jane@example.com"), RULES_OFF) == frozenset()
    no_detector = SensitivityRules(approvals=RULES.approvals, detect=False)
    assert request_classes(make_request("jane@example.com"), no_detector) == frozenset()


def test_only_approved_providers_stay_in_order() -> None:
    providers = providers_of(CATALOG)
    kept = screen(["e1", "e2", "s2"], frozenset({"pii"}), providers, RULES)
    assert kept.candidates == ("e1", "e2")
    assert "sensitive=pii" in kept.reasons
    assert any("s2 (mistral)" in r for r in kept.reasons)
    assert screen(["e1", "e2"], frozenset({"pii", "financial"}), providers, RULES).candidates == (
        "e1",
    )


def test_none_approved_is_policy_denied() -> None:
    with pytest.raises(PolicyError) as caught:
        screen(["e1", "e2"], frozenset({"secret"}), providers_of(CATALOG), RULES)
    assert caught.value.error_type is ErrorType.POLICY_DENIED
    assert "secret" in caught.value.message


def test_unlisted_classes_are_denied_unless_allowed() -> None:
    providers = providers_of(CATALOG)
    with pytest.raises(PolicyError):
        screen(["e1"], frozenset({"hipaa"}), providers, RULES)
    lenient = SensitivityRules(approvals=RULES.approvals, unlisted="allow")
    assert screen(["e1"], frozenset({"hipaa"}), providers, lenient).candidates == ("e1",)
    anyone = SensitivityRules(approvals={"public": frozenset({ANY_PROVIDER})})
    assert screen(["s2"], frozenset({"public"}), providers, anyone).candidates == ("s2",)


def test_route_refuses_rather_than_fall_back() -> None:
    policy = Policy(sensitivity=RULES)
    routed = route(make_request("reach me: jane@example.com"), Fixed(score=0.5), policy, CATALOG)
    assert routed.candidates == ["s1"]  # s2 is mistral: not approved for pii
    with pytest.raises(PolicyError) as caught:
        route(make_request("my key: AKIAZ7QW3RT5YU2IOP4L"), Fixed(), policy, CATALOG)
    assert caught.value.error_type is ErrorType.POLICY_DENIED
    clean = route(make_request("what is 2+2?"), Fixed(score=0.5), policy, CATALOG)
    assert clean.candidates == list(CATALOG.candidates(Tier.STANDARD))


def test_reasons_never_hold_the_sensitive_value() -> None:
    policy = Policy(sensitivity=RULES)
    routed = route(make_request("jane.doe@example.com"), Fixed(score=0.5), policy, CATALOG)
    assert "jane" not in " ".join(routed.decision.reasons)


# ------------------------------------------------------------------ the guarantee, as properties

rules_strategy = st.builds(
    SensitivityRules,
    approvals=st.dictionaries(
        st.sampled_from(CLASSES),
        st.frozensets(st.sampled_from([*PROVIDERS, ANY_PROVIDER])),
        max_size=len(CLASSES),
    ),
    unlisted=st.sampled_from(["deny", "allow"]),
)
catalog_providers = st.dictionaries(
    st.sampled_from([f"m{i}" for i in range(8)]), st.sampled_from(PROVIDERS), min_size=1
)


@settings(max_examples=500)
@given(
    providers=catalog_providers,
    rules=rules_strategy,
    classes=st.frozensets(st.sampled_from(CLASSES)),
    candidates=st.lists(st.sampled_from([f"m{i}" for i in range(8)] + ["ghost"]), max_size=10),
)
def test_every_kept_candidate_is_approved_for_every_class(
    providers: dict[str, str],
    rules: SensitivityRules,
    classes: frozenset[str],
    candidates: list[str],
) -> None:
    def ok(name: str) -> bool:
        return name in providers and all(approved(rules, c, providers[name]) for c in classes)

    try:
        kept = screen(candidates, classes, providers, rules)
    except PolicyError as error:
        assert error.error_type is ErrorType.POLICY_DENIED
        assert classes and not any(ok(name) for name in candidates)
        return
    if not classes:
        assert list(kept.candidates) == candidates
        return
    assert all(ok(name) for name in kept.candidates)
    assert list(kept.candidates) == [name for name in candidates if ok(name)]  # none lost


SECRETS = {
    "email": "write to jane.doe@example.com",
    "card": "card 4111 1111 1111 1111",
    "aws": "aws key AKIA" + "IOSFODNN7EXAMPLE",
    "none": "what is the capital of Peru?",
}


@st.composite
def catalogs(draw: st.DrawFn) -> Catalog:
    names = [f"m{i}" for i in range(draw(st.integers(3, 7)))]
    models = {n: (draw(st.sampled_from(PROVIDERS)), "1", "2") for n in names}
    tiers = {
        tier: draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
        for tier in Tier
    }
    return make_catalog(models, tiers)


@settings(max_examples=400, deadline=None)
@given(
    catalog=catalogs(),
    rules=rules_strategy,
    text=st.lists(st.sampled_from(sorted(SECRETS)), min_size=1, max_size=3),
    hint=st.none() | st.sampled_from(CLASSES),
    score=st.floats(0, 1),
    task=st.sampled_from(["qa", "extraction"]),
    arm_models=st.lists(st.sampled_from([f"m{i}" for i in range(7)]), min_size=1, max_size=3),
    share=st.floats(0, 1),
)
def test_route_sends_sensitive_requests_to_approved_providers_only(
    catalog: Catalog,
    rules: SensitivityRules,
    text: list[str],
    hint: str | None,
    score: float,
    task: str,
    arm_models: list[str],
    share: float,
) -> None:
    prompt = " and ".join(SECRETS[k] for k in text)
    request = make_request(
        prompt, rid=hashlib.sha256(prompt.encode()).hexdigest()[:20], sensitivity=hint
    )
    classes = set(detect_sensitive(prompt).classes) | ({hint} if hint else set())
    experiment = Experiment(
        "x", task, share, (Arm("a", tuple(arm_models)), Arm("b", tuple(reversed(arm_models))))
    )
    policy = Policy(
        routing=TierRules(),
        cascade=CascadeRules(frozenset({"extraction"})),
        sensitivity=rules,
        experiments=(experiment,),
    )
    providers = providers_of(catalog)
    nobody = not any(all(approved(rules, c, p) for c in classes) for p in providers.values())
    try:
        routed = route(request, Fixed(task, score), policy, catalog)
    except PolicyError as error:
        assert error.error_type is ErrorType.POLICY_DENIED
        return
    assert not nobody, "no provider is approved, yet the request was routed"
    sent_to = routed.candidates + (routed.cascade.candidates if routed.cascade else [])
    for name in sent_to:
        assert all(approved(rules, c, providers[name]) for c in classes), (name, classes)


def test_without_a_sensitivity_section_a_secret_is_refused_and_pii_is_recorded() -> None:
    providers = {"m1": "openai", "m2": "gemini"}
    secret = make_request("deploy with key sk-proj-Ab3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z")
    with pytest.raises(PolicyError) as refused:
        screen(["m1", "m2"], request_classes(secret, SAFE_DEFAULTS), providers, SAFE_DEFAULTS)
    assert refused.value.error_type is ErrorType.POLICY_DENIED
    personal = make_request("mail jane.doe@example.com the invoice")
    classes = request_classes(personal, SAFE_DEFAULTS)
    kept = screen(["m1", "m2"], classes, providers, SAFE_DEFAULTS)
    assert classes == {"pii"}
    assert kept.candidates == ("m1", "m2")  # ordinary traffic: nothing dropped
    assert "sensitive=pii" in kept.reasons  # but the class is on record


def test_an_unlisted_secret_is_refused_even_when_unlisted_classes_are_allowed() -> None:
    rules = SensitivityRules(approvals={"pii": frozenset({"*"})}, unlisted="allow")
    assert not rules.approves("secret", "openai")
    assert rules.approves("hipaa", "openai")
    assert SensitivityRules(approvals={"secret": frozenset({"vllm"})}).approves("secret", "vllm")
