"""RPM/TPM budgets of one (provider, model) key, spent before each call, not after a 429.

Two leaky buckets (`aiolimiter.AsyncLimiter`): requests per minute and tokens per
minute, sized from the catalog's `rpm`/`tpm` and tightened whenever the
provider's headers announce a lower limit. On top of them, a cool-down: a 429's
Retry-After, or an announced budget at 0 remaining until its reset, stops calls
until then. A call that has no room either waits for its bucket (when it is the
last candidate) or moves to the next candidate (`processors.serving.walk`).

The buckets are per worker process; the cool-downs travel between replicas with
the health snapshots (`tierline.health`), so one replica's 429 slows them all.
"""

from __future__ import annotations

from aiolimiter import AsyncLimiter

from tierline.processors.health.announced import Announced

#: a 429 without Retry-After cools the model this long
DEFAULT_COOL_S = 1.0


class RateBudget:
    def __init__(
        self, rpm: int | None = None, tpm: int | None = None, *, configured: bool = False
    ) -> None:
        #: sized from the catalog's rpm/tpm (not only from headers)
        self.configured = configured
        self.rpm = rpm
        self.tpm = tpm
        self._requests = AsyncLimiter(rpm, 60) if rpm else None
        self._tokens = AsyncLimiter(tpm, 60) if tpm else None
        #: wall-clock time before which no call is made
        self.cool_until = 0.0
        self.announced: Announced | None = None

    def cooling(self, now: float) -> float:
        """Seconds left in the cool-down (0 when none)."""
        return max(0.0, self.cool_until - now)

    def has_room(self, tokens: int, now: float) -> bool:
        """Whether a call of about `tokens` tokens may go now without waiting."""
        if self.cooling(now) > 0:
            return False
        if self._requests is not None and not self._requests.has_capacity(1):
            return False
        return self._tokens is None or self._tokens.has_capacity(self._fit(tokens))

    async def spend(self, tokens: int) -> None:
        """Take one request and `tokens` from the buckets, waiting for room if needed."""
        if self._requests is not None:
            await self._requests.acquire(1)
        if self._tokens is not None:
            await self._tokens.acquire(self._fit(tokens))

    def rate_limited(self, now: float, retry_after_s: float | None) -> None:
        """A 429: no calls until its Retry-After (or a second) has passed."""
        self.cool_until = max(self.cool_until, now + (retry_after_s or DEFAULT_COOL_S))

    def tighten(self, announced: Announced, now: float) -> None:
        """What the provider's headers said: lower limits shrink the buckets, an empty
        budget cools the model until it refills."""
        self.announced = announced
        limit = announced.requests_limit
        if limit and (self.rpm is None or limit < self.rpm):
            self.rpm = limit
            self._requests = AsyncLimiter(limit, 60)
        limit = announced.tokens_limit
        if limit and (self.tpm is None or limit < self.tpm):
            self.tpm = limit
            self._tokens = AsyncLimiter(limit, 60)
        if announced.requests_remaining == 0 and announced.requests_reset_s:
            self.cool_until = max(self.cool_until, now + announced.requests_reset_s)
        if announced.tokens_remaining == 0 and announced.tokens_reset_s:
            self.cool_until = max(self.cool_until, now + announced.tokens_reset_s)

    def _fit(self, tokens: int) -> int:
        """A call bigger than the whole minute's budget still goes, alone, at full bucket."""
        return max(1, min(tokens, self.tpm or tokens))
