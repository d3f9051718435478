"""The model catalog: tiers cheapest first, prices from the public catalog or the file."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tierline.processors.errors import InputError
from tierline.processors.pricing.catalog import Catalog, CatalogError, load_catalog
from tierline.schemas import ErrorType, Tier


def test_bundled_catalog_fills_every_tier_cheapest_first() -> None:
    catalog = load_catalog()
    for tier in Tier:
        names = catalog.candidates(tier)
        assert names, tier
        prices = [catalog.model(n).price for n in names]
        blended = [p.batch_blended() if tier is Tier.BATCH else p.blended() for p in prices]
        assert blended == sorted(blended), tier
    economy = catalog.model(catalog.candidates(Tier.ECONOMY)[0]).price.blended()
    premium = catalog.model(catalog.candidates(Tier.PREMIUM)[0]).price.blended()
    assert premium > 5 * economy


def test_the_batch_lane_ranks_models_by_their_batch_price() -> None:
    """Mistral is cheaper than gpt-4.1-nano synchronously, but has no batch API here; at
    OpenAI's batch price (half) gpt-4.1-nano is the cheaper on the batch lane."""
    catalog = load_catalog()
    nano, mistral = catalog.model("gpt-4.1-nano"), catalog.model("mistral-small-latest")
    assert mistral.price.blended() < nano.price.blended()
    assert nano.price.batch_blended() < mistral.price.batch_blended()
    assert mistral.price.batch_input is None
    ranked = catalog.candidates(Tier.BATCH)
    assert ranked.index("gpt-4.1-nano") < ranked.index("mistral-small-latest")


def test_batch_prices_are_half_the_synchronous_ones_where_the_family_documents_it() -> None:
    catalog = load_catalog()
    for name in ("gemini-2.5-flash-lite", "claude-haiku-4-5", "gpt-4.1"):
        price = catalog.model(name).price
        assert price.batch_input == price.input / 2, name
        assert price.batch_output == price.output / 2, name
    assert catalog.model("deepseek-chat").price.batch_input is None


def config(**tiers: list[str]) -> dict[str, object]:
    return {
        "models": {
            "cheap": {"provider": "openai", "price": {"input": "0.1", "output": "0.4"}},
            "pricey": {
                "provider": "openai",
                "price": {"input": "2", "output": "8"},
                "context_window": 1000,
            },
            "gpt-4o-mini": {"provider": "openai"},
        },
        "tiers": tiers
        or {"economy": ["pricey", "cheap"], "standard": ["gpt-4o-mini"], "premium": ["pricey"]},
    }


def test_prices_from_the_file_override_the_public_catalog() -> None:
    catalog = Catalog.from_config(config())
    assert catalog.candidates(Tier.ECONOMY) == ("cheap", "pricey")
    assert catalog.model("cheap").price.input == Decimal("0.1") / 1_000_000
    assert catalog.model("gpt-4o-mini").price.input == Decimal("1.5E-7")
    assert catalog.model("gpt-4o-mini").context_window == 128000
    assert catalog.model("pricey").context_window == 1000


def test_unknown_model_is_a_typed_error() -> None:
    with pytest.raises(InputError) as caught:
        Catalog.from_config(config()).model("nope")
    assert caught.value.error_type == ErrorType.UNKNOWN_MODEL


def test_a_tier_naming_a_missing_model_is_refused() -> None:
    with pytest.raises(CatalogError, match="not in \\[models\\]"):
        Catalog.from_config(config(economy=["ghost"], standard=["cheap"], premium=["cheap"]))


def test_an_empty_ladder_tier_is_refused() -> None:
    with pytest.raises(CatalogError, match="premium has no models"):
        Catalog.from_config(config(economy=["cheap"], standard=["cheap"]))


def test_a_model_without_any_price_is_refused() -> None:
    raw = config()
    raw["models"]["mystery"] = {"provider": "openai"}  # type: ignore[index]
    with pytest.raises(CatalogError, match="no price"):
        Catalog.from_config(raw)


def test_simulator_mode_rewrites_every_base_url() -> None:
    catalog = Catalog.from_config(config()).with_simulator("http://127.0.0.1:9/")
    assert {m.api_base for m in catalog.models.values()} == {"http://127.0.0.1:9/v1"}
    assert catalog.candidates(Tier.ECONOMY) == ("cheap", "pricey")
