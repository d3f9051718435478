"""Cost math: usage times price, exact to the nano-dollar.

Normalized usage counts every prompt token in `input_tokens`, of which
`cached_input_tokens` were read from the provider's prompt cache and
`cache_write_tokens` were written to it, `cache_write_1h_tokens` of those to
Anthropic's 1-hour cache; each class has its own price. A price the model does
not have (after `cache_rates` filled in what its provider documents) is the
plain input price, and a 1-hour write without a price of its own costs what a
5-minute write does. The result is rounded once, half-even, to 9 decimal
places: the precision of the ClickHouse column, so a response's cost and its
billed row are the same number.

A batched call (`batch=True`) is billed at the model's batch prices, and its cache
tokens at the cache prices times the batch:sync input ratio: the discounts stack.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from tierline.processors.pricing.prices import Price
from tierline.schemas import Usage

NANO = Decimal("0.000000001")


def cost_of(usage: Usage, price: Price, *, batch: bool = False) -> Decimal:
    """USD for one call's usage at `price` (batch prices when `batch` and the model has them).

    A model with long-context tiers (Gemini 2.5 Pro above 200k prompt tokens, say)
    is priced at the tier the prompt falls in. Counts that add up to more than the
    prompt are cut to it: reads first, then writes, then 1-hour writes among them.
    """
    price = price.for_prompt(usage.input_tokens)
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    written = min(usage.cache_write_tokens, usage.input_tokens - cached)
    written_1h = min(usage.cache_write_1h_tokens, written)
    plain = usage.input_tokens - cached - written
    input_price, output_price = price.input, price.output
    #: the batch discount, stacked onto the cache prices (`batch_rates`)
    share = Decimal(1)
    if batch and price.batch_input is not None:
        input_price = price.batch_input
        if price.input:
            share = price.batch_input / price.input
    if batch and price.batch_output is not None:
        output_price = price.batch_output
    read_price = price.cached_input * share if price.cached_input is not None else input_price
    write_price = price.cache_write * share if price.cache_write is not None else input_price
    write_1h = price.cache_write_1h
    write_1h_price = write_1h * share if write_1h is not None else write_price
    total = (
        plain * input_price
        + cached * read_price
        + (written - written_1h) * write_price
        + written_1h * write_1h_price
        + usage.output_tokens * output_price
    )
    return quantize(total)


def quantize(amount: Decimal) -> Decimal:
    return amount.quantize(NANO, rounding=ROUND_HALF_EVEN)
