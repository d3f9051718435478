"""`Price` (one model's per-token prices) and `PriceBook` (every model's).

A `Price` holds USD per token for plain input, cached-read input, cache-write
input (Anthropic's 1-hour writes apart from the 5-minute ones), output, and the
batch API's input and output: the public catalog's `input_cost_per_token`,
`cache_read_input_token_cost`, `cache_creation_input_token_cost`,
`cache_creation_input_token_cost_above_1hr`, `output_cost_per_token` and
`*_cost_per_token_batches`. A price the catalog leaves out stays None here;
`processors.pricing.cache_rates` fills in the cache prices a provider documents
as multiples of its input price, and `cost_of` says what the rest cost.

Some models cost more per token once a prompt passes a size (Gemini 2.5 Pro
above 200k tokens, GPT models above 272k): the public catalog writes those as
`input_cost_per_token_above_200k_tokens` and the like, kept here as
`long_context` tiers; `Price.for_prompt(n)` is the price that applies to a
call whose prompt has `n` tokens.

Each entry also keeps what the model can do beyond text, from the catalog's
`supports_function_calling`, `supports_vision` and `supports_response_schema`
(`processors.pricing.capabilities`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from importlib import resources
from typing import Any

import orjson

from tierline.processors.pricing.capabilities import Capabilities

BUNDLED_FILE = "litellm_chat_prices.json"
MILLION = Decimal(1_000_000)
#: a long-context price field of the public catalog, e.g. input_cost_per_token_above_200k_tokens
LONG_CONTEXT_FIELD = re.compile(
    r"^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost"
    r"|cache_creation_input_token_cost|cache_creation_input_token_cost_above_1hr)"
    r"_above_(\d+)k_tokens$"
)


def to_decimal(value: Any) -> Decimal | None:
    """A catalog number as the exact decimal its author wrote; None when absent."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))


@dataclass(frozen=True, slots=True)
class Price:
    """USD per token; None where the catalog gives no price (see the module docstring)."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    #: a cache write: a 5-minute one for Anthropic, the only kind elsewhere
    cache_write: Decimal | None = None
    batch_input: Decimal | None = None
    batch_output: Decimal | None = None
    #: a write to Anthropic's 1-hour cache
    cache_write_1h: Decimal | None = None
    #: (prompt size, price) pairs, ascending: the price of calls whose prompt is above the size
    long_context: tuple[tuple[int, Price], ...] = ()

    @classmethod
    def per_million(
        cls,
        input: str | Decimal,
        output: str | Decimal,
        cached_input: str | Decimal | None = None,
        cache_write: str | Decimal | None = None,
        batch_input: str | Decimal | None = None,
        batch_output: str | Decimal | None = None,
        cache_write_1h: str | Decimal | None = None,
    ) -> Price:
        """Build from the per-1M-token figures vendors publish."""

        def per_token(v: str | Decimal | None) -> Decimal | None:
            return None if v is None else Decimal(v) / MILLION

        return cls(
            input=Decimal(input) / MILLION,
            output=Decimal(output) / MILLION,
            cached_input=per_token(cached_input),
            cache_write=per_token(cache_write),
            batch_input=per_token(batch_input),
            batch_output=per_token(batch_output),
            cache_write_1h=per_token(cache_write_1h),
        )

    def for_prompt(self, input_tokens: int) -> Price:
        """The price of a call whose prompt has `input_tokens` tokens (long-context tiers)."""
        price = self
        for threshold, tier in self.long_context:
            if input_tokens > threshold:
                price = tier
        return price

    @classmethod
    def from_catalog_entry(cls, entry: Mapping[str, Any]) -> Price | None:
        """From one entry of the public catalog; None when it has no token prices."""
        inp = to_decimal(entry.get("input_cost_per_token"))
        out = to_decimal(entry.get("output_cost_per_token"))
        if inp is None or out is None:
            return None
        base = cls(
            input=inp,
            output=out,
            cached_input=to_decimal(entry.get("cache_read_input_token_cost")),
            cache_write=to_decimal(entry.get("cache_creation_input_token_cost")),
            batch_input=to_decimal(entry.get("input_cost_per_token_batches")),
            batch_output=to_decimal(entry.get("output_cost_per_token_batches")),
            cache_write_1h=to_decimal(entry.get("cache_creation_input_token_cost_above_1hr")),
        )
        return replace(base, long_context=_long_context_tiers(entry, base))

    def blended(self, input_share: Decimal = Decimal("0.75")) -> Decimal:
        """One number to rank models by: a typical 3:1 input:output token mix."""
        return self.input * input_share + self.output * (1 - input_share)

    def batch_blended(self, input_share: Decimal = Decimal("0.75")) -> Decimal:
        """`blended` at the batch prices (the synchronous ones where there are none)."""
        inp = self.batch_input if self.batch_input is not None else self.input
        out = self.batch_output if self.batch_output is not None else self.output
        return inp * input_share + out * (1 - input_share)


def _long_context_tiers(entry: Mapping[str, Any], base: Price) -> tuple[tuple[int, Price], ...]:
    """The catalog's `*_above_<N>k_tokens` prices as tiers; a price a tier lacks is the base's,
    except a 1-hour cache write's, left for `cache_rates` to derive from the tier's input."""
    fields: dict[int, dict[str, Decimal]] = {}
    for key, value in entry.items():
        match = LONG_CONTEXT_FIELD.match(key)
        amount = to_decimal(value) if match else None
        if match and amount is not None:
            fields.setdefault(int(match.group(2)) * 1000, {})[match.group(1)] = amount
    tiers = []
    for threshold, f in sorted(fields.items()):
        tiers.append(
            (
                threshold,
                Price(
                    input=f.get("input_cost_per_token", base.input),
                    output=f.get("output_cost_per_token", base.output),
                    cached_input=f.get("cache_read_input_token_cost", base.cached_input),
                    cache_write=f.get("cache_creation_input_token_cost", base.cache_write),
                    # not the base's: Anthropic's 2x multiplier applies to the tier's own input
                    cache_write_1h=f.get("cache_creation_input_token_cost_above_1hr"),
                ),
            )
        )
    return tuple(tiers)


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    price: Price
    provider: str
    max_input_tokens: int | None
    max_output_tokens: int | None
    capabilities: Capabilities = Capabilities()


class PriceBook:
    """Prices and context windows by the public catalog's model key (e.g. `gpt-4o-mini`)."""

    def __init__(self, entries: Mapping[str, CatalogEntry]) -> None:
        self._entries = dict(entries)

    @classmethod
    def from_catalog(cls, raw: Mapping[str, Any]) -> PriceBook:
        entries: dict[str, CatalogEntry] = {}
        for key, entry in raw.items():
            if not isinstance(entry, dict):
                continue
            price = Price.from_catalog_entry(entry)
            if price is None:
                continue
            entries[key] = CatalogEntry(
                price=price,
                provider=str(entry.get("litellm_provider", "")),
                max_input_tokens=_int_or_none(entry.get("max_input_tokens")),
                max_output_tokens=_int_or_none(entry.get("max_output_tokens")),
                capabilities=Capabilities.from_flags(entry),
            )
        return cls(entries)

    def get(self, key: str) -> CatalogEntry | None:
        return self._entries.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@functools.cache
def bundled_price_book() -> PriceBook:
    """The snapshot shipped with tierline (see LICENSE-litellm.txt beside it)."""
    raw = resources.files("tierline.processors.pricing.prices").joinpath(BUNDLED_FILE).read_bytes()
    return PriceBook.from_catalog(orjson.loads(raw))
