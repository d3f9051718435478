"""The candidate walk against the simulator over real HTTP: retries, fallbacks, bills."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from tierline.processors.pricing.catalog import Catalog
from tierline.processors.pricing.cost import cost_of
from tierline.processors.providers.keys import KeyRing
from tierline.processors.serving.backoff import Backoff
from tierline.processors.serving.walk import Dispatcher, RetryPlan
from tierline.processors.simulator import RunningSimulator, SimulatorProfile, start_simulator
from tierline.schemas import (
    Attempt,
    ErrorType,
    RoutedRequest,
    RouteRequest,
    RoutingDecision,
    Tier,
)

CATALOG = {
    "models": {
        "small": {
            "provider": "openai",
            "price": {"input": "0.10", "output": "0.40", "cached_input": "0.025"},
        },
        "medium": {"provider": "openai", "price": {"input": "0.40", "output": "1.60"}},
        "big": {"provider": "openai", "price": {"input": "2", "output": "8"}},
    },
    "tiers": {"economy": ["small", "medium"], "standard": ["medium"], "premium": ["big"]},
}


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    running = await start_simulator(SimulatorProfile(seed=3))
    yield running
    await running.stop()


@pytest.fixture
async def dispatcher(sim: RunningSimulator) -> AsyncIterator[Dispatcher]:
    catalog = Catalog.from_config(CATALOG).with_simulator(sim.url)
    async with httpx.AsyncClient() as client:
        retry = RetryPlan(
            max_retries=2, call_timeout_s=0.5, backoff=Backoff(base_s=0.01, cap_s=0.02)
        )
        yield Dispatcher(catalog, client, KeyRing({}, fallback="sim-key"), retry, seed=1)


def routed(text: str, candidates: list[str] | None = None, rid: str = "r1") -> RoutedRequest:
    request = RouteRequest.model_validate(
        {
            "id": rid,
            "tenant": "acme",
            "messages": [{"role": "user", "content": text}],
            "metadata": {"feature": "faq"},
        }
    )
    return RoutedRequest(
        request=request,
        decision=RoutingDecision(task="qa", tier=Tier.ECONOMY, score=0.1, reasons=["test"]),
        candidates=candidates or ["small", "medium"],
        routed_at=datetime.now(UTC),
    )


async def test_success_is_billed_exactly_once(dispatcher: Dispatcher) -> None:
    outcome = await dispatcher.serve(routed("What is the capital of France?"))
    response = outcome.response
    assert response.status == "ok" and response.content
    assert response.model == "small" and response.attempts == 1
    assert len(outcome.costs) == 1
    record = outcome.costs[0]
    assert record.record_id == "r1#1" and record.feature == "faq"
    price = dispatcher.catalog.model("small").price
    assert record.cost_usd == cost_of(response.usage, price) == response.cost_usd
    assert response.cost_usd > 0


async def test_retryable_failures_are_retried_on_the_same_model(dispatcher: Dispatcher) -> None:
    outcome = await dispatcher.serve(routed("hello [sim:fail_first=2]"))
    assert outcome.response.status == "ok"
    assert outcome.response.model == "small"
    assert outcome.response.attempts == 3
    assert [c.attempt for c in outcome.costs] == [3]  # failed attempts used no tokens


async def test_exhausted_retries_fall_back_to_the_next_model(dispatcher: Dispatcher) -> None:
    outcome = await dispatcher.serve(routed("hello [sim:error=500]"))
    # the same body fails on every model: 3 tries on small, 3 on medium
    assert outcome.failed
    assert outcome.response.error is not None
    assert outcome.response.error.type == ErrorType.SERVER_ERROR
    assert outcome.response.attempts == 6
    assert outcome.costs == []


async def test_a_hang_times_out_and_is_typed(dispatcher: Dispatcher) -> None:
    outcome = await dispatcher.serve(routed("hello [sim:hang]", candidates=["small"]))
    assert outcome.failed
    assert outcome.response.error is not None
    assert outcome.response.error.type == ErrorType.TIMEOUT
    assert outcome.response.error.retryable


async def test_garbage_is_invalid_response_and_moves_on(dispatcher: Dispatcher) -> None:
    outcome = await dispatcher.serve(routed("hello [sim:garbage]"))
    assert outcome.failed
    assert outcome.response.error is not None
    assert outcome.response.error.type == ErrorType.INVALID_RESPONSE
    assert outcome.response.attempts == 2  # not retried on the same model; next model tried


async def test_rate_limits_honour_retry_after(dispatcher: Dispatcher) -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    dispatcher._sleep = record
    outcome = await dispatcher.serve(routed("hi [sim:rate_limit=0.3]"))
    assert outcome.failed
    assert outcome.response.error is not None
    assert outcome.response.error.type == ErrorType.RATE_LIMITED
    assert outcome.response.error.retryable
    assert len(waits) == 4  # two retries on each of the two models
    assert all(w >= 0.3 for w in waits)


async def test_unknown_candidate_is_skipped(dispatcher: Dispatcher) -> None:
    outcome = await dispatcher.serve(routed("hi", candidates=["ghost", "medium"]))
    assert outcome.response.status == "ok"
    assert outcome.response.model == "medium"


async def test_no_usable_candidate_is_a_typed_error(dispatcher: Dispatcher) -> None:
    outcome = await dispatcher.serve(routed("hi", candidates=["ghost"]))
    assert outcome.failed
    assert outcome.response.error is not None
    assert outcome.response.error.type == ErrorType.UNKNOWN_MODEL


async def test_auth_failure_message_never_contains_the_key(sim: RunningSimulator) -> None:
    catalog = Catalog.from_config(CATALOG).with_simulator(sim.url)
    secret = "sim-invalid-key"
    keys = KeyRing({"OPENAI_API_KEY": secret})
    async with httpx.AsyncClient() as client:
        outcome = await Dispatcher(catalog, client, keys, seed=1).serve(routed("hi"))
    assert outcome.failed
    assert outcome.response.error is not None
    assert outcome.response.error.type == ErrorType.AUTH
    assert secret not in outcome.response.model_dump_json()


async def test_total_cost_is_the_sum_of_billed_attempts(dispatcher: Dispatcher) -> None:
    outcomes = [await dispatcher.serve(routed(f"question {i}", rid=f"q{i}")) for i in range(5)]
    for o in outcomes:
        assert o.response.cost_usd == sum((c.cost_usd for c in o.costs), Decimal(0))


async def test_a_refusal_the_provider_charged_for_is_billed_and_answered_as_an_error(
    dispatcher: Dispatcher,
) -> None:
    outcome = await dispatcher.serve(routed("write something [sim:refusal]", candidates=["small"]))
    assert outcome.failed
    assert outcome.response.error is not None
    assert outcome.response.error.type == ErrorType.CONTENT_FILTERED
    assert len(outcome.costs) == 1
    record = outcome.costs[0]
    assert record.status == "error" and record.error_type == "content_filtered"
    assert record.cost_usd > 0
    assert outcome.response.cost_usd == record.cost_usd


async def test_internal_failure_is_one_typed_error_response(dispatcher: Dispatcher) -> None:
    outcome = dispatcher.internal_failure(routed("hi", rid="boom"), RuntimeError("oops"))
    assert outcome.failed and outcome.costs == []
    assert outcome.response.id == "boom"
    assert outcome.response.error is not None
    assert outcome.response.error.type == ErrorType.INTERNAL


async def test_every_call_is_announced_as_started_and_settled_with_the_outcome(
    dispatcher: Dispatcher,
) -> None:
    started: list[Attempt] = []

    async def record(attempt: Attempt) -> None:
        started.append(attempt)

    dispatcher.on_attempt = record
    outcome = await dispatcher.serve(routed("hello [sim:fail_first=2]", rid="r9"))
    assert outcome.response.status == "ok"
    assert [a.state for a in started] == ["started"] * 3  # failed calls too: they may bill
    assert [a.attempt_id for a in outcome.attempts] == [a.attempt_id for a in started]
    assert {a.state for a in outcome.attempts} == {"settled"}
    assert all(a.request_id == "r9" and a.model == "small" for a in started)
    assert all(a.estimated_cost_usd > 0 for a in started)
    first = {a.attempt_id for a in started}
    again = await dispatcher.serve(routed("hello", rid="r9"))  # the same request, served again
    assert len(again.attempts) == 1 and not {a.attempt_id for a in again.attempts} & first
