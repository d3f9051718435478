"""Cost math: exact Decimal, cached and cache-write tokens priced apart, rounded once."""

from __future__ import annotations

from decimal import Decimal

from tierline.processors.pricing.cost import cost_of
from tierline.processors.pricing.prices import Price, bundled_price_book
from tierline.processors.pricing.prices.book import to_decimal
from tierline.schemas import Usage


def test_plain_input_and_output_by_hand() -> None:
    # $0.15 / 1M input, $0.60 / 1M output: 1,000 in + 500 out = 0.00015 + 0.0003
    price = Price.per_million("0.15", "0.60")
    assert cost_of(Usage(input_tokens=1000, output_tokens=500), price) == Decimal("0.000450000")


def test_cached_input_is_billed_at_the_cached_price() -> None:
    # 2,000 prompt tokens of which 1,500 cached: 500 * 2.5e-6 + 1500 * 1.25e-6 + 100 * 1e-5
    price = Price.per_million("2.50", "10.00", cached_input="1.25")
    usage = Usage(input_tokens=2000, cached_input_tokens=1500, output_tokens=100)
    assert cost_of(usage, price) == Decimal("0.001250") + Decimal("0.001875") + Decimal("0.001")


def test_cache_writes_are_billed_at_the_write_price() -> None:
    # Anthropic-style: 100 plain + 1,000 written + 3,000 read, 200 out
    price = Price.per_million("3", "15", cached_input="0.30", cache_write="3.75")
    usage = Usage(
        input_tokens=4100, cached_input_tokens=3000, cache_write_tokens=1000, output_tokens=200
    )
    expected = Decimal("0.0003") + Decimal("0.00375") + Decimal("0.0009") + Decimal("0.003")
    assert cost_of(usage, price) == expected


def test_without_a_cached_price_cached_tokens_cost_the_input_price() -> None:
    price = Price.per_million("1", "2")
    usage = Usage(input_tokens=1000, cached_input_tokens=1000)
    assert cost_of(usage, price) == Decimal("0.001")


def test_cost_rounds_half_even_to_nine_places() -> None:
    price = Price(input=Decimal("0.0000000015"), output=Decimal(0))  # 1.5e-9 per token
    assert cost_of(Usage(input_tokens=1), price) == Decimal("0.000000002")  # 1.5e-9 -> 2e-9
    assert cost_of(Usage(input_tokens=5), price) == Decimal("0.000000008")  # 7.5e-9 -> 8e-9


def test_batch_prices_apply_only_when_asked() -> None:
    price = Price(
        input=Decimal("2e-6"),
        output=Decimal("8e-6"),
        batch_input=Decimal("1e-6"),
        batch_output=Decimal("4e-6"),
    )
    usage = Usage(input_tokens=1000, output_tokens=1000)
    assert cost_of(usage, price) == Decimal("0.010")
    assert cost_of(usage, price, batch=True) == Decimal("0.005")


def test_catalog_floats_become_the_decimals_their_author_wrote() -> None:
    assert to_decimal(1.5e-07) == Decimal("1.5E-7")
    assert to_decimal(0.1) == Decimal("0.1")
    assert to_decimal(None) is None


def test_bundled_price_book_has_real_prices() -> None:
    book = bundled_price_book()
    entry = book.get("gpt-4o-mini")
    assert entry is not None
    assert entry.price.input == Decimal("1.5E-7")
    assert entry.price.cached_input == Decimal("7.5E-8")
    assert entry.max_input_tokens == 128000
    assert len(book) > 100


def test_a_zero_batch_price_is_a_price_not_a_missing_one() -> None:
    price = Price(
        input=Decimal("1e-6"),
        output=Decimal("2e-6"),
        batch_input=Decimal(0),
        batch_output=Decimal(0),
    )
    assert cost_of(Usage(input_tokens=1000, output_tokens=1000), price, batch=True) == Decimal(0)


def test_the_batch_discount_stacks_onto_cache_prices() -> None:
    # Claude Haiku 4.5 in a Message Batch: $1 / $5 per 1M, batch half ($0.50 / $2.50); cache
    # read 0.1x, 5-minute write 1.25x, 1-hour write 2x input, each halved in a batch.
    # 1,000 plain + 2,000 read + 500 written (200 of them to the 1-hour cache), 400 out:
    #   1000 * 0.50e-6  = 0.000500      2000 * 0.05e-6  = 0.000100
    #    300 * 0.625e-6 = 0.0001875      200 * 1.00e-6  = 0.000200
    #    400 * 2.50e-6  = 0.001000                 total = 0.0019875
    price = Price.per_million(
        "1", "5", cached_input="0.10", cache_write="1.25", cache_write_1h="2",
        batch_input="0.50", batch_output="2.50",
    )  # fmt: skip
    usage = Usage(
        input_tokens=3500,
        cached_input_tokens=2000,
        cache_write_tokens=500,
        cache_write_1h_tokens=200,
        output_tokens=400,
    )
    assert cost_of(usage, price, batch=True) == Decimal("0.001987500")
    # exactly half the synchronous bill: 0.003975
    assert cost_of(usage, price) == Decimal("0.003975000")
