"""`Announced`: the rate limits a provider states in its reply headers, in one shape.

OpenAI (`x-ratelimit-*-requests|tokens`), Anthropic (`anthropic-ratelimit-*`) and a
`retry-after` on any of them all say the same few things: how many requests and
tokens a minute the key may use, how many remain, and when they refill. The
adapters' header reader (`processors.providers.rate_headers`) fills this in; the
health board tightens the model's budgets with it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Announced:
    """Limits from one reply; `None` where the provider did not say."""

    requests_limit: int | None = None
    requests_remaining: int | None = None
    #: seconds until the request budget is full again
    requests_reset_s: float | None = None
    tokens_limit: int | None = None
    tokens_remaining: int | None = None
    tokens_reset_s: float | None = None
    #: the reply's Retry-After (seconds), when it had one
    retry_after_s: float | None = None

    @property
    def empty(self) -> bool:
        return all(
            v is None
            for v in (
                self.requests_limit,
                self.requests_remaining,
                self.requests_reset_s,
                self.tokens_limit,
                self.tokens_remaining,
                self.tokens_reset_s,
                self.retry_after_s,
            )
        )
