"""The `max_cost_usd` hint: what a call to a model will cost, estimated before it is made.

An estimate, not a bill: the prompt's tokens are guessed from its characters
(about 4 a token, plus a few per message — the same rule the dispatcher uses
to check context windows), and the answer's from `params.max_tokens`, or,
when the request does not bound it, from the policy's
`default_output_tokens`. Estimate = prompt tokens x input price + output
tokens x output price, in Decimal, rounded to the nano-dollar like a bill.
With `max_tokens` set the output part is an upper bound; without it the
estimate is a typical answer, so an unusually long answer can cost more than
the hint: set `max_tokens` when the budget is hard.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from tierline.processors.pricing.catalog import ModelSpec
from tierline.processors.pricing.cost import quantize
from tierline.processors.pricing.tool_text import tool_text
from tierline.schemas import RouteRequest

DEFAULT_OUTPUT_TOKENS = 512
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


def prompt_tokens(request: RouteRequest) -> int:
    """Roughly how many tokens the prompt is: ceil(characters / 4) + 4 per message, the
    tools it offers and the calls of its history counted as characters too."""
    chars = sum(len(message.text()) for message in request.messages)
    chars += len(tool_text(request))
    return -(-chars // CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(request.messages)


def output_tokens(request: RouteRequest, default: int = DEFAULT_OUTPUT_TOKENS) -> int:
    return request.params.max_tokens or default


def estimate(
    request: RouteRequest, model: ModelSpec, default_output: int = DEFAULT_OUTPUT_TOKENS
) -> Decimal:
    """USD one call of `model` on `request` is expected to cost."""
    price = model.price
    return quantize(
        prompt_tokens(request) * price.input + output_tokens(request, default_output) * price.output
    )


def within(
    request: RouteRequest,
    candidates: Iterable[str],
    models: Mapping[str, ModelSpec],
    limit: Decimal,
    default_output: int = DEFAULT_OUTPUT_TOKENS,
) -> list[str]:
    """The candidates (order kept) whose estimate is at most `limit`; unknown models dropped."""
    return [
        name
        for name in candidates
        if name in models and estimate(request, models[name], default_output) <= limit
    ]


def cheapest(
    request: RouteRequest,
    candidates: Iterable[str],
    models: Mapping[str, ModelSpec],
    default_output: int = DEFAULT_OUTPUT_TOKENS,
) -> Decimal | None:
    """The lowest estimate among the candidates the catalog knows; None when it knows none."""
    estimates = [
        estimate(request, models[name], default_output) for name in candidates if name in models
    ]
    return min(estimates) if estimates else None
