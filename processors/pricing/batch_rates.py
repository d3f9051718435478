"""Batch prices the catalog leaves out, from the discount a provider documents.

The three families with a batch API bill every batched call at half the
synchronous price, whatever the model:

| family    | batch API                        | discount |
|-----------|----------------------------------|---------:|
| openai    | Batch (`/v1/batches`)            | 50%      |
| anthropic | Message Batches                  | 50%      |
| gemini    | Batch Mode (`batchGenerateContent`) | 50%   |

(https://platform.openai.com/docs/guides/batch,
https://docs.anthropic.com/en/docs/build-with-claude/batch-processing#pricing,
https://ai.google.dev/gemini-api/docs/batch-mode). A batch price the price catalog
lists (`input_cost_per_token_batches`) or the config pins wins; a model of another
family has no batch price, and is billed at its synchronous one.

The discount stacks with the prompt-cache multipliers: a batched cache read or write
costs the cache price times the batch discount (`cost_of(..., batch=True)` applies
the model's batch:sync input ratio to the cache classes), as Anthropic documents.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from tierline.processors.pricing.prices import Price

#: the families whose batch price is a documented share of the synchronous one
BATCH_SHARE: dict[str, Decimal] = {
    "openai": Decimal("0.5"),
    "anthropic": Decimal("0.5"),
    "gemini": Decimal("0.5"),
}


def has_batch_api(family: str) -> bool:
    """Whether tierline can send `family`'s models work through its batch API."""
    return family in BATCH_SHARE


def documented_batch_rates(price: Price, family: str) -> Price:
    """`price` with the batch prices it lacks filled in from `family`'s discount."""
    share = BATCH_SHARE.get(family)
    if share is None:
        return price
    tiers = tuple((threshold, _filled(tier, share)) for threshold, tier in price.long_context)
    return replace(_filled(price, share), long_context=tiers)


def _filled(price: Price, share: Decimal) -> Price:
    return replace(
        price,
        batch_input=price.batch_input if price.batch_input is not None else price.input * share,
        batch_output=price.batch_output if price.batch_output is not None else price.output * share,
    )
