"""Shared pieces of the policy tests: a priced catalog of several providers, requests, verdicts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tierline.processors.pricing.catalog import Catalog, ModelSpec
from tierline.processors.pricing.prices import Price
from tierline.processors.routing.classifiers import Classification
from tierline.schemas import RouteRequest, Tier

# name: (provider, input $/1M, output $/1M)
MODELS: dict[str, tuple[str, str, str]] = {
    "e1": ("openai", "0.10", "0.40"),
    "e2": ("anthropic", "0.20", "0.80"),
    "s1": ("openai", "1.00", "4.00"),
    "s2": ("mistral", "0.80", "3.00"),
    "p1": ("openai", "5.00", "20.00"),
    "p2": ("anthropic", "6.00", "24.00"),
}
TIERS: dict[Tier, list[str]] = {
    Tier.ECONOMY: ["e1", "e2"],
    Tier.STANDARD: ["s1", "s2"],
    Tier.PREMIUM: ["p1", "p2"],
    Tier.BATCH: ["e1"],
}


def spec(name: str, provider: str, input_price: str, output_price: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        provider=provider,
        model_id=name,
        api_base="http://127.0.0.1:1/v1",
        key_env="NONE",
        price=Price.per_million(Decimal(input_price), Decimal(output_price)),
    )


def make_catalog(
    models: dict[str, tuple[str, str, str]] | None = None,
    tiers: dict[Tier, list[str]] | None = None,
) -> Catalog:
    models = MODELS if models is None else models
    return Catalog(
        {name: spec(name, *entry) for name, entry in models.items()},
        TIERS if tiers is None else tiers,
    )


def make_request(
    text: str = "What is the capital of Peru?",
    *,
    rid: str = "r1",
    tenant: str = "t",
    feature: str | None = None,
    **hints: Any,
) -> RouteRequest:
    params = hints.pop("params", {})
    return RouteRequest.model_validate(
        {
            "id": rid,
            "tenant": tenant,
            "messages": [{"role": "user", "content": text}],
            "params": params,
            "hints": {k: v for k, v in hints.items() if v is not None},
            "metadata": {"feature": feature},
        }
    )


class Fixed:
    """A classifier that always says the same thing."""

    name = "fixed"

    def __init__(self, task: str = "qa", score: float = 0.1, confidence: float = 1.0) -> None:
        self.verdict = Classification(task, score, confidence)

    def classify(self, request: RouteRequest) -> Classification:
        return self.verdict
