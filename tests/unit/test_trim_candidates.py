"""The candidate walk with trimming, over real HTTP to the simulator: a model whose window is
too small for the whole history is still a candidate when a trimmed one fits, is sent that,
and is billed on it; with `hints.trim = false` (or trimming off) it is skipped as before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tierline.processors.pricing.catalog import Catalog
from tierline.processors.pricing.cost import cost_of
from tierline.processors.providers.keys import KeyRing
from tierline.processors.providers.tokens import count_prompt_tokens
from tierline.processors.routing.cost_cap import estimate
from tierline.processors.routing.policy import Policy
from tierline.processors.routing.policy_reload import FixedPolicy
from tierline.processors.routing.trim_rules import TrimRules
from tierline.processors.serving.walk import Dispatcher
from tierline.processors.simulator import (
    ModelOverride,
    RunningSimulator,
    SimulatorProfile,
    start_simulator,
)
from tierline.schemas import Attempt, ErrorType, RoutedRequest, RouteRequest, RoutingDecision, Tier

WINDOW = 1500
CATALOG = {
    "models": {
        # cheap, and its window far too small for the whole conversation
        "tiny": {
            "provider": "anthropic",
            "price": {"input": "0.10", "output": "0.40"},
            "context_window": WINDOW,
        },
        "roomy": {
            "provider": "gemini",
            "price": {"input": "1.00", "output": "4.00"},
            "context_window": 1_000_000,
        },
    },
    "tiers": {"economy": ["tiny", "roomy"], "standard": ["roomy"], "premium": ["roomy"]},
}
WORDS = "the migration plan moves billing, search and the mobile backend off the old cluster "


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    # the simulator refuses a prompt over tiny's window, as the provider would
    profile = SimulatorProfile(seed=5, models={"tiny": ModelOverride(context_window=WINDOW)})
    running = await start_simulator(profile)
    yield running
    await running.stop()


def dispatcher(sim: RunningSimulator, client: httpx.AsyncClient, **kw: Any) -> Dispatcher:
    catalog = Catalog.from_config(CATALOG).with_simulator(sim.url)
    return Dispatcher(catalog, client, KeyRing({}, fallback="sim-key"), seed=1, **kw)


def routed(candidates: list[str], **hints: Any) -> RoutedRequest:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "Answer in one line."}]
    for n in range(12):
        messages.append({"role": "user", "content": f"step {n}: {WORDS * 3}"})
        messages.append({"role": "assistant", "content": f"noted {n}: {WORDS * 3}"})
    messages.append({"role": "user", "content": "So what moves first?"})
    request = RouteRequest.model_validate(
        {
            "id": "long-1",
            "tenant": "acme",
            "messages": messages,
            "params": {"max_tokens": 64},
            "hints": hints,
        }
    )
    return RoutedRequest(
        request=request,
        decision=RoutingDecision(task="qa", tier=Tier.ECONOMY, score=0.1, reasons=["test"]),
        candidates=candidates,
        routed_at=datetime.now(UTC),
    )


async def test_a_model_too_small_for_the_history_answers_it_trimmed(sim: RunningSimulator) -> None:
    started: list[Attempt] = []

    async def on_attempt(attempt: Attempt) -> None:
        started.append(attempt)

    request = routed(["tiny", "roomy"])
    assert count_prompt_tokens(request.request, "anthropic") > WINDOW
    async with httpx.AsyncClient() as client:
        outcome = await dispatcher(sim, client, on_attempt=on_attempt).serve(request)
    response = outcome.response
    assert response.status == "ok", response.error
    assert response.model == "tiny"  # the cheap model answered, not the roomy one
    assert response.trimmed_messages > 0
    assert sim.stats.by_model == {"tiny": 1}
    dropped = response.trimmed_messages
    assert response.decision is not None
    assert any(
        r.startswith(f"trimmed {dropped} oldest messages to fit tiny's 1,500-token window")
        for r in response.decision.reasons
    ), response.decision.reasons
    # billed on what was sent: the provider's count of the trimmed prompt
    assert 0 < response.usage.input_tokens <= WINDOW - 64
    (record,) = outcome.costs
    tiny = Catalog.from_config(CATALOG).model("tiny")
    assert record.cost_usd == cost_of(response.usage, tiny.price) == response.cost_usd
    # and estimated on it too
    (attempt,) = started
    assert attempt.estimated_cost_usd < estimate(request.request, tiny)


async def test_with_trim_false_the_small_model_is_skipped_for_a_bigger_one(
    sim: RunningSimulator,
) -> None:
    async with httpx.AsyncClient() as client:
        outcome = await dispatcher(sim, client).serve(routed(["tiny", "roomy"], trim=False))
    response = outcome.response
    assert response.status == "ok" and response.model == "roomy"
    assert response.trimmed_messages == 0
    assert sim.stats.by_model == {"roomy": 1}  # tiny was never called
    assert response.decision is not None
    assert not any(r.startswith("trimmed ") for r in response.decision.reasons)


async def test_with_trim_false_and_no_bigger_model_it_is_no_candidate(
    sim: RunningSimulator,
) -> None:
    async with httpx.AsyncClient() as client:
        outcome = await dispatcher(sim, client).serve(routed(["tiny"], trim=False))
    error = outcome.response.error
    assert error is not None and error.type == ErrorType.NO_CANDIDATE
    assert "1500-token window" in error.message
    assert sim.stats.by_model == {}


async def test_the_policy_can_turn_trimming_off(sim: RunningSimulator) -> None:
    off = FixedPolicy(Policy(trimming=TrimRules(enabled=False)))
    async with httpx.AsyncClient() as client:
        outcome = await dispatcher(sim, client, policy=off).serve(routed(["tiny", "roomy"]))
    assert outcome.response.model == "roomy" and outcome.response.trimmed_messages == 0


async def test_a_bigger_model_after_a_trimmed_one_gets_the_whole_history(
    sim: RunningSimulator,
) -> None:
    # tiny fails: roomy, whose window takes everything, is sent the whole history
    failing = SimulatorProfile(
        seed=5, models={"tiny": ModelOverride(context_window=WINDOW, error_rate=1.0)}
    )
    broken = await start_simulator(failing)
    try:
        async with httpx.AsyncClient() as client:
            outcome = await dispatcher(broken, client).serve(routed(["tiny", "roomy"]))
    finally:
        await broken.stop()
    response = outcome.response
    assert response.status == "ok" and response.model == "roomy"
    assert response.trimmed_messages == 0
    assert response.usage.input_tokens > WINDOW  # the whole history went to roomy
    assert sim.stats.by_model == {} and broken.stats.by_model["tiny"] >= 1
