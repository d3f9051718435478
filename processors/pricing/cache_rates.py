"""Prompt-cache prices the catalog leaves out, from the multipliers a provider documents.

Which price a cache token is billed at, in order:

1. the price catalog's explicit price for the model (`cache_read_input_token_cost`,
   `cache_creation_input_token_cost`, `cache_creation_input_token_cost_above_1hr`, or
   the `price = {cached_input, cache_write, cache_write_1h}` pinned in the config);
2. else, for a family that documents its cache prices as multiples of the base input
   price, that multiple of the model's input price (of each long-context tier's own
   input price, for a tier: the multipliers stack with long-context pricing):

   | family    | cache read | 5-minute cache write | 1-hour cache write |
   |-----------|-----------:|---------------------:|-------------------:|
   | anthropic | 0.1x       | 1.25x                | 2x                 |

   (https://platform.claude.com/docs/en/build-with-claude/prompt-caching#pricing);
3. else what `cost_of` bills a missing price at: the plain input price (a 1-hour write
   with no price of its own, the 5-minute write price).

The catalog wins where it differs from the multipliers: Claude Haiku 3 writes to the
5-minute cache at $0.30/M on a $0.25/M base, 1.2x.

No other family documents one multiplier for every model, so none gets step 2:

* openai: cached reads are discounted per model (50% for gpt-4o, 75% for gpt-4.1, 90%
  for gpt-5), listed in the catalog. Cache writes cost nothing extra before the GPT-5.6
  family (`cost_of` bills them as plain input); from GPT-5.6 on they cost 1.25x input,
  reported as `usage.prompt_tokens_details.cache_write_tokens`, and the catalog lists
  the price (https://developers.openai.com/api/docs/guides/prompt-caching).
* gemini: an implicit cache hit (`usageMetadata.cachedContentTokenCount`) is billed at
  the model's cached price, listed in the catalog (90% off on Gemini 2.5, 75% on 2.0);
  Gemini bills no cache write per request.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from tierline.processors.pricing.prices import Price


@dataclass(frozen=True, slots=True)
class CacheMultipliers:
    """Cache prices as multiples of the base input price."""

    read: Decimal
    write: Decimal
    write_1h: Decimal


#: the families whose cache prices are documented multiples of their input price
DOCUMENTED: dict[str, CacheMultipliers] = {
    "anthropic": CacheMultipliers(read=Decimal("0.1"), write=Decimal("1.25"), write_1h=Decimal(2)),
}


def documented_cache_rates(price: Price, family: str) -> Price:
    """`price` with the cache prices it lacks filled in from `family`'s multipliers."""
    rates = DOCUMENTED.get(family)
    if rates is None:
        return price
    tiers = tuple((threshold, _filled(tier, rates)) for threshold, tier in price.long_context)
    return replace(_filled(price, rates), long_context=tiers)


def _filled(price: Price, rates: CacheMultipliers) -> Price:
    def given_or(value: Decimal | None, multiplier: Decimal) -> Decimal:
        return value if value is not None else price.input * multiplier

    return replace(
        price,
        cached_input=given_or(price.cached_input, rates.read),
        cache_write=given_or(price.cache_write, rates.write),
        cache_write_1h=given_or(price.cache_write_1h, rates.write_1h),
    )
