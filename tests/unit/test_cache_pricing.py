"""Cache pricing: the catalog's explicit cache prices, else the provider's documented multipliers.

Anthropic's rule (https://platform.claude.com/docs/en/build-with-claude/prompt-caching#pricing):
5-minute cache writes cost 1.25x the base input price, 1-hour writes 2x, cache reads 0.1x,
and "these multipliers stack with ... long context pricing". The usage of the worked
examples is the page's own 1-hour example (2,048 uncached, 1,800 read, 456 5-minute and
100 1-hour writes, 503 out).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tierline.processors.pricing.cache_rates import documented_cache_rates
from tierline.processors.pricing.catalog import Catalog
from tierline.processors.pricing.cost import cost_of
from tierline.processors.pricing.prices import Price, PriceBook
from tierline.schemas import Usage

M = Decimal(1_000_000)
#: the prompt caching page's 1-hour example, normalized (see test_providers_anthropic)
DOCUMENTED = Usage(
    input_tokens=2048 + 1800 + 456 + 100,
    cached_input_tokens=1800,
    cache_write_tokens=456 + 100,
    cache_write_1h_tokens=100,
    output_tokens=503,
)


def catalog(**models: dict[str, Any]) -> Catalog:
    return Catalog.from_config(
        {"models": models, "tiers": {t: list(models) for t in ("economy", "standard", "premium")}}
    )


def test_anthropic_cache_prices_the_catalog_lacks_come_from_the_documented_multipliers() -> None:
    pinned = {"provider": "anthropic", "price": {"input": "3", "output": "15"}}
    price = catalog(claude=pinned).model("claude").price
    assert (price.cached_input, price.cache_write, price.cache_write_1h) == (
        Decimal("0.3") / M,
        Decimal("3.75") / M,
        Decimal(6) / M,
    )
    usage = Usage(
        input_tokens=1000 + 3000 + 500 + 2000,
        cached_input_tokens=3000,
        cache_write_tokens=500 + 2000,
        cache_write_1h_tokens=2000,
        output_tokens=100,
    )
    #   1,000 input         at $3/M              = 0.003
    #   3,000 cache reads   at 0.1  x $3/M       = 0.0009
    #     500 5m writes     at 1.25 x $3/M       = 0.001875
    #   2,000 1h writes     at 2    x $3/M       = 0.012
    #     100 output        at $15/M             = 0.0015
    #                                            = 0.019275
    assert cost_of(usage, price) == Decimal("0.019275000")


def test_a_catalog_model_without_a_one_hour_price_writes_at_twice_its_input() -> None:
    # claude-4-opus-20250514: the catalog lists $15 in, $1.50 read, $18.75 write, $75 out
    # and no 1-hour price, so a 1-hour write is 2 x $15/M = $30/M
    price = catalog(**{"claude-4-opus-20250514": {"provider": "anthropic"}}).model(
        "claude-4-opus-20250514"
    )
    assert price.price.cache_write_1h == Decimal(30) / M
    #   2,048 uncached * $15/M     = 0.03072
    #   1,800 read     * $1.50/M   = 0.0027
    #     456 5m write * $18.75/M  = 0.00855
    #     100 1h write * $30/M     = 0.003
    #     503 output   * $75/M     = 0.037725
    #                              = 0.082695
    assert cost_of(DOCUMENTED, price.price) == Decimal("0.082695000")


def test_the_catalog_price_wins_over_the_multiplier() -> None:
    # Claude Haiku 3 writes to the 5-minute cache at $0.30/M on a $0.25/M base: 1.2x, not the
    # 1.25x ($0.3125/M) the multiplier would give, as the pricing table says
    price = catalog(**{"claude-3-haiku-20240307": {"provider": "anthropic"}}).model(
        "claude-3-haiku-20240307"
    )
    assert price.price.input == Decimal("0.25") / M
    assert price.price.cache_write == Decimal("0.30") / M


def test_one_hour_writes_of_a_long_prompt_cost_twice_the_long_context_input() -> None:
    models = catalog(
        **{
            "claude-sonnet-4-5": {"provider": "anthropic"},
            "claude-sonnet-4-20250514": {"provider": "anthropic"},
        }
    )
    # above 200k prompt tokens: $6 in, $0.60 read, $22.50 out; claude-sonnet-4-5's catalog
    # lists the tier's 1-hour price ($12/M), claude-sonnet-4-20250514's does not: 2 x $6/M
    usage = Usage(
        input_tokens=40_000 + 200_000 + 10_000,
        cached_input_tokens=200_000,
        cache_write_tokens=10_000,
        cache_write_1h_tokens=10_000,
        output_tokens=1_000,
    )
    #    40,000 uncached * $6/M     = 0.24
    #   200,000 read     * $0.60/M  = 0.12
    #    10,000 1h write * $12/M    = 0.12
    #     1,000 output   * $22.50/M = 0.0225
    #                               = 0.5025
    for name in ("claude-sonnet-4-5", "claude-sonnet-4-20250514"):
        price = models.model(name).price
        assert price.for_prompt(250_000).cache_write_1h == Decimal(12) / M, name
        assert cost_of(usage, price) == Decimal("0.502500000"), name
    # below the threshold the base 1-hour price ($6/M) applies
    assert models.model("claude-sonnet-4-20250514").price.cache_write_1h == Decimal(6) / M


def test_other_families_get_no_multipliers() -> None:
    bare = Price.per_million("2", "8")
    assert documented_cache_rates(bare, "openai") is bare
    assert documented_cache_rates(bare, "gemini") is bare
    # so their cached reads and writes cost plain input: 2,006 * $2/M + 300 * $8/M
    usage = Usage(input_tokens=2006, cached_input_tokens=1920, output_tokens=300)
    assert cost_of(usage, bare) == Decimal("0.006412000")


def test_a_one_hour_write_without_its_own_price_costs_a_five_minute_write() -> None:
    price = Price.per_million("3", "15", cache_write="3.75")
    usage = Usage(input_tokens=100, cache_write_tokens=100, cache_write_1h_tokens=100)
    assert cost_of(usage, price) == Decimal("0.000375000")  # 100 * $3.75/M


def test_more_one_hour_writes_than_writes_are_cut_to_the_writes() -> None:
    price = Price.per_million("1", "5", cache_write="1.25", cache_write_1h="2")
    usage = Usage(input_tokens=300, cache_write_tokens=200, cache_write_1h_tokens=500)
    # 100 plain * $1/M + 200 1-hour writes * $2/M (never more writes than were reported)
    assert cost_of(usage, price) == Decimal("0.000500000")


def test_the_catalog_entry_carries_the_one_hour_price_and_its_long_context_tier() -> None:
    entry = {
        "input_cost_per_token": 3e-06,
        "output_cost_per_token": 1.5e-05,
        "cache_creation_input_token_cost": 3.75e-06,
        "cache_creation_input_token_cost_above_1hr": 6e-06,
        "cache_creation_input_token_cost_above_1hr_above_200k_tokens": 1.2e-05,
        "input_cost_per_token_above_200k_tokens": 6e-06,
    }
    price = Price.from_catalog_entry(entry)
    assert price is not None
    assert price.cache_write_1h == Decimal("6E-6")
    assert price.for_prompt(200_001).cache_write_1h == Decimal("1.2E-5")
    assert price.for_prompt(200_001).cache_write == Decimal("3.75E-6")  # the tier lacks it


def test_a_refreshed_price_book_is_filled_in_the_same_way() -> None:
    # a newer catalog that lists only the token prices of the model's key
    models = catalog(claude={"provider": "anthropic", "price_key": "claude-haiku-4-5"})
    book = PriceBook.from_catalog(
        {
            "claude-haiku-4-5": {
                "litellm_provider": "anthropic",
                "input_cost_per_token": 4e-06,
                "output_cost_per_token": 2e-05,
            }
        }
    )
    price = models.with_price_book(book).model("claude").price
    assert price.input == Decimal("4E-6")
    assert (price.cached_input, price.cache_write, price.cache_write_1h) == (
        Decimal("0.4") / M,
        Decimal(5) / M,
        Decimal(8) / M,
    )


def test_a_pinned_one_hour_price_is_used() -> None:
    price = {"input": "3", "output": "15", "cache_write": "3.75", "cache_write_1h": "5"}
    pinned = catalog(claude={"provider": "anthropic", "price": price}).model("claude").price
    assert pinned.cache_write_1h == Decimal(5) / M
