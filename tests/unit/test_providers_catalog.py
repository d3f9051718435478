"""The provider families in the bundled catalog, and the error taxonomy they share."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from tierline.processors.errors import kind_of
from tierline.processors.pricing.catalog import load_catalog
from tierline.processors.providers.http_errors import classify
from tierline.processors.providers.keys import KeyRing
from tierline.processors.providers.registry import adapter_for
from tierline.processors.serving.walk import Dispatcher
from tierline.processors.simulator import SimulatorProfile, start_simulator
from tierline.schemas import ErrorType, RoutedRequest, RouteRequest, RoutingDecision, Tier


def test_every_ladder_tier_offers_openai_so_one_key_serves_all() -> None:
    catalog = load_catalog()
    for tier in Tier:
        providers = {catalog.model(n).provider for n in catalog.candidates(tier)}
        assert "openai" in providers, tier


def test_first_choices_span_every_wire_format() -> None:
    catalog = load_catalog()
    first = {tier: catalog.model(catalog.candidates(tier)[0]) for tier in Tier}
    assert {m.provider for m in first.values()} == {"gemini", "anthropic", "openai"}
    wire = {type(adapter_for(m.provider)).__name__ for m in first.values()}
    assert wire == {"OpenAIAdapter", "AnthropicAdapter", "GeminiAdapter"}
    economy = first[Tier.ECONOMY].price.blended()
    assert first[Tier.PREMIUM].price.blended() > 10 * economy
    assert first[Tier.STANDARD].price.blended() > economy


def test_every_bundled_model_has_a_window_and_cache_prices_where_offered() -> None:
    for model in load_catalog().models.values():
        assert model.context_window, model.name
        assert model.price_key, model.name
    catalog = load_catalog()
    assert catalog.model("claude-haiku-4-5").price.cache_write is not None
    assert catalog.model("deepseek-chat").price.cached_input is not None
    assert catalog.model("gemini-2.5-flash-lite").price.cached_input is not None


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        (429, "insufficient_quota", "You exceeded your current quota", ErrorType.AUTH),
        (429, "", "slow down", ErrorType.RATE_LIMITED),
        (400, "RESOURCE_EXHAUSTED", "quota", ErrorType.RATE_LIMITED),
        (529, "", "", ErrorType.OVERLOADED),
        (503, "", "The server is overloaded", ErrorType.OVERLOADED),
        (503, "", "Service Unavailable", ErrorType.SERVER_ERROR),
        (504, "", "gateway timeout", ErrorType.TIMEOUT),
        (408, "", "", ErrorType.TIMEOUT),
        (401, "", "", ErrorType.AUTH),
        (402, "", "Insufficient Balance", ErrorType.AUTH),
        (404, "", "no such model", ErrorType.AUTH),
        (413, "", "Request too large", ErrorType.CONTEXT_TOO_LONG),
        (400, "", "input length and `max_tokens` exceed context limit", ErrorType.CONTEXT_TOO_LONG),
        (400, "content_policy_violation", "rejected", ErrorType.CONTENT_FILTERED),
        (400, "", "blocked by our safety system", ErrorType.CONTENT_FILTERED),
        (422, "", "Extra inputs are not permitted", ErrorType.BAD_REQUEST),
    ],
)
def test_classification(status: int, code: str, message: str, expected: ErrorType) -> None:
    assert classify(status, code, message) == expected


def test_each_type_says_whether_to_retry_and_whether_another_model_helps() -> None:
    retry_same = {
        ErrorType.RATE_LIMITED,
        ErrorType.OVERLOADED,
        ErrorType.TIMEOUT,
        ErrorType.CONNECTION,
        ErrorType.SERVER_ERROR,
    }
    next_model = retry_same | {
        ErrorType.AUTH,
        ErrorType.CONTEXT_TOO_LONG,
        ErrorType.CONTENT_FILTERED,
        ErrorType.INVALID_RESPONSE,
    }
    for kind in ErrorType:
        assert kind_of(kind).retryable == (kind in retry_same), kind
        assert kind_of(kind).next_model_helps == (kind in next_model), kind


async def test_the_bundled_catalog_answers_every_tier_through_the_simulator() -> None:
    catalog = load_catalog()
    sim = await start_simulator(SimulatorProfile(seed=4))
    try:
        async with httpx.AsyncClient() as client:
            dispatcher = Dispatcher(
                catalog.with_simulator(sim.url), client, KeyRing({}, fallback="sim-key")
            )
            providers = {}
            for tier in Tier:
                request = RouteRequest.model_validate(
                    {
                        "id": f"t-{tier}",
                        "tenant": "acme",
                        "messages": [
                            {"role": "system", "content": "Answer in JSON."},
                            {"role": "user", "content": "Label: I was charged twice."},
                        ],
                        "params": {"max_tokens": 64, "temperature": 0,
                                   "response_format": {"type": "json_object"}},
                    }
                )  # fmt: skip
                routed = RoutedRequest(
                    request=request,
                    decision=RoutingDecision(task="classification", tier=tier, score=0.5),
                    candidates=list(catalog.candidates(tier)),
                    routed_at=datetime.now(UTC),
                )
                outcome = await dispatcher.serve(routed)
                assert outcome.response.status == "ok", outcome.response.error
                assert outcome.response.cost_usd == outcome.costs[0].cost_usd > 0
                providers[tier] = outcome.response.provider
    finally:
        await sim.stop()
    assert providers == {
        Tier.ECONOMY: "gemini",
        Tier.BATCH: "openai",  # gpt-4.1-nano, cheapest at its batch price
        Tier.STANDARD: "anthropic",
        Tier.PREMIUM: "openai",
    }
    assert set(sim.stats.by_route) == {"openai", "anthropic", "gemini"}
