"""The cascade against the simulator: cheap first, checked, escalated on failure, both billed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tierline.processors.pricing.catalog import Catalog
from tierline.processors.providers.keys import KeyRing
from tierline.processors.serving.answer_check import check_answer, looks_like_refusal
from tierline.processors.serving.backoff import Backoff
from tierline.processors.serving.cascade import merge, serve_with_cascade
from tierline.processors.serving.json_subset import validate
from tierline.processors.serving.serve import serve
from tierline.processors.serving.walk import Dispatcher, RetryPlan, ServeOutcome
from tierline.processors.simulator import ModelOverride, SimulatorProfile, start_simulator
from tierline.schemas import (
    CostRecord,
    ErrorInfo,
    ErrorType,
    Escalation,
    RoutedRequest,
    RouteRequest,
    RouteResponse,
    RoutingDecision,
    Tier,
)

CATALOG = {
    "models": {
        "small": {"provider": "openai", "price": {"input": "0.10", "output": "0.40"}},
        "big": {"provider": "openai", "price": {"input": "2", "output": "8"}},
    },
    "tiers": {"economy": ["small"], "standard": ["big"], "premium": ["big"]},
}


async def make_dispatcher(profile: SimulatorProfile) -> AsyncIterator[Dispatcher]:
    sim = await start_simulator(profile)
    try:
        catalog = Catalog.from_config(CATALOG).with_simulator(sim.url)
        async with httpx.AsyncClient() as client:
            retry = RetryPlan(
                max_retries=2, call_timeout_s=2, backoff=Backoff(base_s=0.01, cap_s=0.02)
            )
            yield Dispatcher(catalog, client, KeyRing({}, fallback="sim-key"), retry, seed=1)
    finally:
        await sim.stop()


@pytest.fixture
async def dispatcher() -> AsyncIterator[Dispatcher]:
    async for d in make_dispatcher(SimulatorProfile(seed=5, output_tokens=(8, 16))):
        yield d


@pytest.fixture
async def small_rambles() -> AsyncIterator[Dispatcher]:
    """The cheap model always writes 100 tokens, the strong one 10."""
    profile = SimulatorProfile(
        seed=5,
        models={
            "small": ModelOverride(output_tokens=(100, 100)),
            "big": ModelOverride(output_tokens=(10, 10)),
        },
    )
    async for d in make_dispatcher(profile):
        yield d


@pytest.fixture
async def small_breaks() -> AsyncIterator[Dispatcher]:
    """The cheap model always answers with an unparseable body."""
    profile = SimulatorProfile(seed=5, models={"small": ModelOverride(garbage_rate=1.0)})
    async for d in make_dispatcher(profile):
        yield d


def routed(text: str, rid: str = "c1", **params: Any) -> RoutedRequest:
    request = RouteRequest.model_validate(
        {
            "id": rid,
            "tenant": "acme",
            "messages": [{"role": "user", "content": text}],
            "params": params,
        }
    )
    return RoutedRequest(
        request=request,
        decision=RoutingDecision(
            task="extraction", tier=Tier.ECONOMY, score=0.8, reasons=["cascade: economy first"]
        ),
        candidates=["small"],
        cascade=Escalation(tier=Tier.PREMIUM, candidates=["big"]),
        routed_at=datetime.now(UTC),
    )


def assert_billing_adds_up(outcome: ServeOutcome) -> None:
    ids = [c.record_id for c in outcome.costs]
    assert len(ids) == len(set(ids))
    assert all(c.record_id == CostRecord.make_id(c.request_id, c.attempt) for c in outcome.costs)
    assert outcome.response.cost_usd == sum((c.cost_usd for c in outcome.costs), Decimal(0))
    assert outcome.response.usage.output_tokens == sum(c.output_tokens for c in outcome.costs)


async def test_a_good_cheap_answer_is_kept(dispatcher: Dispatcher) -> None:
    outcome = await serve(
        dispatcher, routed("Extract the city.", response_format={"type": "json_object"})
    )
    assert outcome.response.status == "ok"
    assert outcome.response.model == "small" and outcome.response.tier is Tier.ECONOMY
    assert len(outcome.costs) == 1 and outcome.response.attempts == 1
    assert outcome.response.decision is not None
    assert not any("escalated" in r for r in outcome.response.decision.reasons)
    assert_billing_adds_up(outcome)


async def test_a_truncated_cheap_answer_escalates_and_both_calls_are_billed(
    small_rambles: Dispatcher,
) -> None:
    outcome = await serve(small_rambles, routed("Summarize.", max_tokens=50))
    response = outcome.response
    assert response.status == "ok" and response.model == "big" and response.tier is Tier.PREMIUM
    assert [(c.model, c.attempt, c.record_id) for c in outcome.costs] == [
        ("small", 1, "c1#1"),
        ("big", 2, "c1#2"),
    ]
    assert outcome.costs[0].tier is Tier.ECONOMY and outcome.costs[1].tier is Tier.PREMIUM
    assert response.attempts == 2
    assert response.cost_usd > outcome.costs[1].cost_usd > 0
    assert_billing_adds_up(outcome)
    assert response.decision is not None
    assert (
        "cascade: economy answer failed its check (truncated (finish_reason=length)): "
        "escalated to premium"
    ) in response.decision.reasons
    assert outcome.costs[1].reasons == response.decision.reasons


async def test_a_broken_cheap_answer_escalates(small_breaks: Dispatcher) -> None:
    outcome = await serve(small_breaks, routed("Extract the city.", rid="c2"))
    assert outcome.response.status == "ok" and outcome.response.model == "big"
    # the garbage call used no billable reply; the strong call is attempt 2
    assert [(c.model, c.record_id) for c in outcome.costs] == [("big", "c2#2")]
    assert outcome.response.attempts == 2
    assert_billing_adds_up(outcome)


async def test_retries_in_both_calls_keep_record_ids_unique(small_rambles: Dispatcher) -> None:
    outcome = await serve(small_rambles, routed("Go [sim:fail_first=1]", rid="c3", max_tokens=50))
    assert outcome.response.status == "ok" and outcome.response.model == "big"
    # small: try 1 fails, try 2 billed; big: try 1 fails, try 2 billed -> attempt 2 + 2
    assert [c.record_id for c in outcome.costs] == ["c3#2", "c3#4"]
    assert outcome.response.attempts == 4
    assert_billing_adds_up(outcome)


@pytest.mark.parametrize(
    ("directive", "error", "billed"),
    [
        # a refusal still used tokens the provider charges for; garbage has no usage to bill
        ("[sim:refusal]", ErrorType.CONTENT_FILTERED, 2),
        ("[sim:garbage]", ErrorType.INVALID_RESPONSE, 0),
    ],
)
async def test_when_every_model_fails_the_last_error_comes_back(
    dispatcher: Dispatcher, directive: str, error: ErrorType, billed: int
) -> None:
    outcome = await serve(dispatcher, routed(f"Label this {directive}", rid="c4"))
    assert outcome.failed
    assert outcome.response.error is not None and outcome.response.error.type is error
    assert outcome.response.attempts == 2  # one per call: neither is retried on the same model
    assert outcome.response.decision is not None
    assert any("escalated to premium" in r for r in outcome.response.decision.reasons)
    assert len(outcome.costs) == billed
    assert all(c.status == "error" and c.error_type == error for c in outcome.costs)
    assert_billing_adds_up(outcome)


async def test_a_bad_request_is_not_escalated(dispatcher: Dispatcher) -> None:
    outcome = await serve(dispatcher, routed("hi [sim:error=400]", rid="c5"))
    assert outcome.failed
    assert outcome.response.error is not None
    assert outcome.response.error.type is ErrorType.BAD_REQUEST
    assert outcome.response.attempts == 1


async def test_without_a_cascade_it_is_one_walk(dispatcher: Dispatcher) -> None:
    plain = routed("hello", rid="c6").model_copy(update={"cascade": None})
    outcome = await serve(dispatcher, plain)
    assert outcome.response.model == "small" and len(outcome.costs) == 1


async def test_a_custom_check_decides(dispatcher: Dispatcher) -> None:
    outcome = await serve_with_cascade(
        dispatcher,
        routed("hello", rid="c7"),
        ["big"],
        lambda _request, response: "too cheap" if response.model == "small" else None,
        escalate_tier=Tier.STANDARD,
    )
    assert outcome.response.model == "big" and outcome.response.tier is Tier.STANDARD
    assert [c.record_id for c in outcome.costs] == ["c7#1", "c7#2"]
    assert_billing_adds_up(outcome)


# ------------------------------------------------------------------ merging, without HTTP


def _outcome(rid: str, attempts: int, billed: list[tuple[int, str]]) -> ServeOutcome:
    costs = [
        CostRecord(
            record_id=CostRecord.make_id(rid, a),
            request_id=rid,
            attempt=a,
            tenant="t",
            tier=Tier.ECONOMY,
            model="m",
            provider="openai",
            status="ok",
            output_tokens=1,
            cost_usd=Decimal(cost),
            created_at=datetime.now(UTC),
        )
        for a, cost in billed
    ]
    response = RouteResponse(
        id=rid,
        tenant="t",
        status="ok",
        attempts=attempts,
        cost_usd=sum((c.cost_usd for c in costs), Decimal(0)),
    )
    return ServeOutcome(response, costs)


def test_merge_renumbers_after_the_first_calls_attempts() -> None:
    merged = merge(_outcome("r", 3, [(3, "0.1")]), _outcome("r", 2, [(1, "0.2"), (2, "0.3")]), 5.0)
    assert [c.record_id for c in merged.costs] == ["r#3", "r#4", "r#5"]
    assert merged.response.attempts == 5
    assert merged.response.cost_usd == Decimal("0.6")


# ------------------------------------------------------------------ the check


def _response(content: str | None, finish: str = "stop", **extra: Any) -> RouteResponse:
    return RouteResponse.model_validate(
        {
            "id": "r",
            "tenant": "t",
            "status": "ok",
            "content": content,
            "finish_reason": finish,
            **extra,
        }
    )


def _request(**params: Any) -> RouteRequest:
    return RouteRequest.model_validate(
        {"id": "r", "tenant": "t", "messages": [{"role": "user", "content": "x"}], "params": params}
    )


SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "ticket",
        "schema": {
            "type": "object",
            "properties": {
                "label": {"type": "string", "enum": ["billing", "bug"]},
                "priority": {"type": "integer", "minimum": 1, "maximum": 3},
            },
            "required": ["label"],
            "additionalProperties": False,
        },
    },
}


@pytest.mark.parametrize(
    ("params", "response", "problem"),
    [
        ({}, _response("Lima."), None),
        ({}, _response("   "), "empty answer"),
        ({}, _response("Lima", finish="length"), "truncated"),
        ({}, _response("I'm sorry, but I can't help with that."), "refusal"),
        ({"response_format": {"type": "json_object"}}, _response('{"a": 1}'), None),
        (
            {"response_format": {"type": "json_object"}},
            _response("```json\n{}\n```"),
            "not valid JSON",
        ),
        ({"response_format": {"type": "json_object"}}, _response("[1, 2]"), "not an object"),
        ({"response_format": SCHEMA}, _response('{"label": "bug", "priority": 2}'), None),
        ({"response_format": SCHEMA}, _response('{"label": "spam"}'), "schema"),
        ({"response_format": SCHEMA}, _response('{"priority": 2}'), "missing required"),
        ({"response_format": SCHEMA}, _response('{"label": "bug", "x": 1}'), "unexpected"),
    ],
)
def test_the_check(params: dict[str, Any], response: RouteResponse, problem: str | None) -> None:
    found = check_answer(_request(**params), response)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_a_failed_call_fails_the_check() -> None:
    failed = RouteResponse.from_error("r", "t", ErrorInfo(type=ErrorType.TIMEOUT, message="slow"))
    assert check_answer(_request(), failed) == "call failed (timeout)"


def test_refusals_are_short_declines_only() -> None:
    assert looks_like_refusal("Sorry, I cannot assist with that request.")
    assert looks_like_refusal("I\u2019m unable to provide that information.")
    assert not looks_like_refusal("I can help with that! The answer is 4.")
    assert not looks_like_refusal("I can't help but notice " + "x" * 500)


def test_the_schema_subset() -> None:
    schema = {
        "$defs": {
            "item": {
                "type": "object",
                "required": ["id"],
                "properties": {"id": {"type": "integer"}},
            }
        },
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 1},
            "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "score": {"type": ["number", "null"], "exclusiveMaximum": 1},
            "kind": {"anyOf": [{"const": "a"}, {"const": "b"}]},
        },
    }
    assert validate({"items": [{"id": 1}], "code": "ABC", "score": None, "kind": "a"}, schema) == []
    assert validate({"items": []}, schema) == ["$.items: fewer than 1 items"]
    assert validate({"items": [{"id": "1"}]}, schema) == [
        "$.items[0].id: expected integer, got string"
    ]
    assert validate({"code": "abc"}, schema) == ["$.code: does not match '^[A-Z]{3}$'"]
    assert validate({"score": 1}, schema) == ["$.score: 1 is not < 1"]
    assert validate({"kind": "c"}, schema) == ["$.kind: matches none of anyOf"]
    assert validate(True, {"type": "integer"}) == ["$: expected integer, got boolean"]
    assert validate(3.0, {"type": "integer"}) == []


def test_a_catastrophic_client_pattern_is_not_run() -> None:
    import time

    evil = {"type": "string", "pattern": "^(a+)+$"}
    started = time.perf_counter()
    assert validate("a" * 40 + "!", evil) == []  # not checked, rather than a stalled worker
    assert time.perf_counter() - started < 0.5
    assert validate("abc", {"type": "string", "pattern": "^[0-9]+$"}) != []  # safe ones still run
