"""Exponential backoff with full jitter, and Retry-After honoured.

Attempt n waits a random time in [0, min(cap, base * 2**n)] ("full jitter"), so
a crowd of workers that failed together does not retry together. A provider's
Retry-After wins when it asks for longer; one that asks for more than
`max_retry_after_s` is not waited for: the caller moves to the next model.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float = 0.2
    cap_s: float = 8.0
    max_retry_after_s: float = 20.0

    def delay(self, attempt: int, rng: random.Random, retry_after_s: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        ceiling = min(self.cap_s, self.base_s * (2**attempt))
        jittered = rng.uniform(0, ceiling)
        if retry_after_s is not None:
            return max(retry_after_s, jittered)
        return jittered

    def waits_for(self, retry_after_s: float | None) -> bool:
        """Whether a Retry-After is short enough to wait for on the same model."""
        return retry_after_s is None or retry_after_s <= self.max_retry_after_s
