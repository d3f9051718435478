"""Per-model rate limits: a sliding 60-second window of requests and tokens.

A model with `rpm_limit` or `tpm_limit` (see `knobs`) gets one `RateWindow`.
Every request that reaches the limit check asks `admit()`; an admitted request
takes one request slot and its tokens (estimated input plus the most it may
output) for the next 60 seconds, a refused one takes nothing and is told when
the window frees room for it. The `Admission` is what the wire formats announce
in their rate-limit headers, so a client sees the very budget that is enforced:

* `*_limit`: the knob itself;
* `*_remaining`: what is left once this request is counted (a refused request
  is not counted);
* `reset_at`: when the budget is full again, i.e. when the newest request
  counted leaves the window, on the same clock as `now` (OpenAI and Anthropic
  both define their reset as "fully replenished");
* `retry_after_s`: for a refused request, the wait until the window has room
  for it, rounded up to 0.1 s and at least 0.1 s; a request larger than the
  whole token budget can never pass and is told the full window.

Pure bookkeeping on a clock the caller passes, so tests drive it without waiting
a minute.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

__all__ = ["WINDOW_S", "Admission", "Breach", "RateWindow"]

WINDOW_S = 60.0
"""The window's span: limits are per minute."""
_MIN_RETRY_S = 0.1


@dataclass(frozen=True, slots=True)
class Breach:
    """Which budget refused a request, for the provider's 429 message."""

    kind: Literal["requests", "tokens"]
    limit: int
    used: int
    requested: int


@dataclass(frozen=True, slots=True)
class Admission:
    """The window's answer to one request, and the budget as it stands after it."""

    admitted: bool
    requests_limit: int | None
    requests_remaining: int | None
    tokens_limit: int | None
    tokens_remaining: int | None
    reset_at: float
    """Clock time at which the window is empty again (`now` when it already is)."""
    retry_after_s: float = 0.0
    """For a refused request: seconds until it would fit; 0 when admitted."""
    breach: Breach | None = None


def _round_up(seconds: float) -> float:
    # the epsilon keeps 0.3 from becoming 0.4 through 0.30000000000000004
    return max(_MIN_RETRY_S, math.ceil(seconds * 10.0 - 1e-9) / 10.0)


class RateWindow:
    """The requests and tokens one model took in the last `span_s` seconds."""

    __slots__ = ("_entries", "_span", "_tokens", "rpm", "tpm")

    def __init__(self, rpm: int | None, tpm: int | None, span_s: float = WINDOW_S) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self._span = span_s
        self._entries: deque[tuple[float, int]] = deque()
        self._tokens = 0

    def _prune(self, now: float) -> None:
        entries = self._entries
        horizon = now - self._span
        while entries and entries[0][0] <= horizon:
            self._tokens -= entries.popleft()[1]

    def admit(self, now: float, tokens: int) -> Admission:
        """Count a request of `tokens` at `now` if it fits, else say when it would."""
        self._prune(now)
        entries = self._entries
        rpm, tpm = self.rpm, self.tpm
        count, used = len(entries), self._tokens
        over_requests = rpm is not None and count + 1 > rpm
        over_tokens = tpm is not None and used + tokens > tpm
        if not (over_requests or over_tokens):
            entries.append((now, tokens))
            self._tokens = used + tokens
            return Admission(
                admitted=True,
                requests_limit=rpm,
                requests_remaining=None if rpm is None else rpm - count - 1,
                tokens_limit=tpm,
                tokens_remaining=None if tpm is None else tpm - used - tokens,
                reset_at=now + self._span,
            )
        wait = 0.0
        breach: Breach
        if over_requests:
            assert rpm is not None
            # the oldest entry whose leaving brings the count under the limit
            wait = entries[count - rpm][0] + self._span - now
            breach = Breach("requests", rpm, count, 1)
        if over_tokens:
            assert tpm is not None
            if tokens > tpm:
                token_wait = self._span
            else:
                freed, token_wait = 0, 0.0
                for t, n in entries:
                    freed += n
                    if used - freed + tokens <= tpm:
                        token_wait = t + self._span - now
                        break
            if not over_requests or token_wait > wait:
                breach = Breach("tokens", tpm, used, tokens)
            wait = max(wait, token_wait)
        return Admission(
            admitted=False,
            requests_limit=rpm,
            requests_remaining=None if rpm is None else max(0, rpm - count),
            tokens_limit=tpm,
            tokens_remaining=None if tpm is None else max(0, tpm - used),
            reset_at=entries[-1][0] + self._span if entries else now,
            retry_after_s=_round_up(wait),
            breach=breach,
        )
