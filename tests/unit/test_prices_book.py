"""The price book: every per-token price kind, long-context tiers, config overrides."""

from __future__ import annotations

from decimal import Decimal

from tierline.processors.pricing.catalog import Catalog
from tierline.processors.pricing.cost import cost_of
from tierline.processors.pricing.prices import Price, bundled_price_book
from tierline.schemas import Usage


def test_every_price_kind_is_read_from_the_catalog_format() -> None:
    price = Price.from_catalog_entry(
        {
            "input_cost_per_token": 2e-06,
            "output_cost_per_token": 8e-06,
            "cache_read_input_token_cost": 5e-07,
            "cache_creation_input_token_cost": 2.5e-06,
            "input_cost_per_token_batches": 1e-06,
            "output_cost_per_token_batches": 4e-06,
        }
    )
    assert price == Price(
        input=Decimal("0.000002"),
        output=Decimal("0.000008"),
        cached_input=Decimal("5E-7"),
        cache_write=Decimal("0.0000025"),
        batch_input=Decimal("0.000001"),
        batch_output=Decimal("0.000004"),
    )


def test_long_context_tiers_apply_above_their_threshold() -> None:
    entry = bundled_price_book().get("gemini/gemini-2.5-pro")
    assert entry is not None
    price = entry.price
    assert [t for t, _ in price.long_context] == [200_000]
    assert price.for_prompt(200_000) is price
    long = price.for_prompt(200_001)
    assert (long.input, long.output, long.cached_input) == (
        Decimal("0.0000025"),
        Decimal("0.000015"),
        Decimal("2.5E-7"),
    )
    # 250,000 prompt tokens (50,000 cached) and 1,000 out, at the long-context price:
    #   200,000 * 2.5e-6 = 0.5; 50,000 * 2.5e-7 = 0.0125; 1,000 * 1.5e-5 = 0.015
    usage = Usage(input_tokens=250_000, cached_input_tokens=50_000, output_tokens=1_000)
    assert cost_of(usage, price.for_prompt(usage.input_tokens)) == Decimal("0.527500000")


def test_a_tier_missing_a_price_kind_keeps_the_base_one() -> None:
    price = Price.from_catalog_entry(
        {
            "input_cost_per_token": 1e-06,
            "output_cost_per_token": 2e-06,
            "cache_read_input_token_cost": 1e-07,
            "input_cost_per_token_above_128k_tokens": 2e-06,
        }
    )
    assert price is not None
    tier = price.for_prompt(128_001)
    assert (tier.input, tier.output, tier.cached_input) == (
        Decimal("0.000002"),
        Decimal("0.000002"),
        Decimal("1E-7"),
    )


def test_config_prices_pin_every_kind_per_million() -> None:
    catalog = Catalog.from_config(
        {
            "models": {
                "house-model": {
                    "provider": "vllm",
                    "price": {
                        "input": "0.20",
                        "output": "0.80",
                        "cached_input": "0.05",
                        "cache_write": "0.25",
                        "batch_input": "0.10",
                        "batch_output": "0.40",
                    },
                }
            },
            "tiers": {t: ["house-model"] for t in ("economy", "standard", "premium")},
        }
    )
    model = catalog.model("house-model")
    assert model.price_key == ""  # pinned: a price refresh leaves it alone
    assert model.price == Price.per_million("0.20", "0.80", "0.05", "0.25", "0.10", "0.40")
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert cost_of(usage, model.price, batch=True) == Decimal("0.500000000")


def test_a_model_named_by_its_plain_id_finds_its_family_prefixed_price() -> None:
    catalog = Catalog.from_config(
        {
            "models": {
                "gemini-2.5-flash": {"provider": "gemini"},
                "deepseek-chat": {"provider": "deepseek"},
                "mistral-small-latest": {"provider": "mistral"},
                "sonnet": {
                    "provider": "anthropic",
                    "model_id": "claude-sonnet-4-5-20250929",
                    "price_key": "claude-sonnet-4-5",
                },  # fmt: skip
            },
            "tiers": {t: ["gemini-2.5-flash"] for t in ("economy", "standard", "premium")},
        }
    )
    assert catalog.model("gemini-2.5-flash").price_key == "gemini/gemini-2.5-flash"
    assert catalog.model("deepseek-chat").price_key == "deepseek/deepseek-chat"
    assert catalog.model("mistral-small-latest").price.input == Decimal("6E-8")
    sonnet = catalog.model("sonnet")
    assert sonnet.model_id == "claude-sonnet-4-5-20250929"
    assert sonnet.price.cache_write == Decimal("0.00000375")
    assert sonnet.context_window == 200_000
