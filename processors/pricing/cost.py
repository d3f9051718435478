"""Cost math: usage times price, exact to the nano-dollar.

Normalized usage counts every prompt token in `input_tokens`, of which
`cached_input_tokens` were read from the provider's prompt cache and
`cache_write_tokens` were written to it; each part has its own price. The
result is rounded once, half-even, to 9 decimal places: the precision of the
ClickHouse column, so a response's cost and its billed row are the same number.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from tierline.processors.pricing.prices import Price
from tierline.schemas import Usage

NANO = Decimal("0.000000001")


def cost_of(usage: Usage, price: Price, *, batch: bool = False) -> Decimal:
    """USD for one call's usage at `price` (batch prices when `batch` and the model has them).

    A model with long-context tiers (Gemini 2.5 Pro above 200k prompt tokens, say)
    is priced at the tier the prompt falls in.
    """
    price = price.for_prompt(usage.input_tokens)
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    written = min(usage.cache_write_tokens, usage.input_tokens - cached)
    plain = usage.input_tokens - cached - written
    input_price = price.batch_input if batch and price.batch_input is not None else price.input
    output_price = price.batch_output if batch and price.batch_output is not None else price.output
    total = (
        plain * input_price
        + cached * (price.cached_input if price.cached_input is not None else input_price)
        + written * (price.cache_write if price.cache_write is not None else input_price)
        + usage.output_tokens * output_price
    )
    return quantize(total)


def quantize(amount: Decimal) -> Decimal:
    return amount.quantize(NANO, rounding=ROUND_HALF_EVEN)
