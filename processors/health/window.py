"""A rolling window of one model's recent calls: latency percentiles and failure rates.

The window keeps the last `max_calls` outcomes not older than `max_age_s`.
Latency percentiles are over successful calls only (a refused connection is
fast and says nothing about how long the model takes to answer); the rates are
over every call in the window.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

#: outcomes that are the provider's fault (what the circuit breaker counts)
FAILURES = frozenset(
    {"timeout", "connection", "server_error", "overloaded", "invalid_response", "auth"}
)


@dataclass(frozen=True, slots=True)
class WindowStats:
    calls: int
    p50_ms: float | None
    p95_ms: float | None
    error_rate: float
    timeout_rate: float
    rate_limited_rate: float


class LatencyWindow:
    def __init__(self, max_calls: int = 200, max_age_s: float = 120.0) -> None:
        self.max_age_s = max_age_s
        self._calls: collections.deque[tuple[float, str, float | None]] = collections.deque(
            maxlen=max_calls
        )

    def add(self, now: float, outcome: str, latency_ms: float | None) -> None:
        """One call's outcome ("ok" or an error type) and, if it succeeded, its latency."""
        self._calls.append((now, outcome, latency_ms if outcome == "ok" else None))

    def stats(self, now: float) -> WindowStats:
        calls = self._calls
        while calls and now - calls[0][0] > self.max_age_s:
            calls.popleft()
        n = len(calls)
        latencies = sorted(ms for _, _, ms in calls if ms is not None)
        outcomes = collections.Counter(outcome for _, outcome, _ in calls)
        failures = sum(count for outcome, count in outcomes.items() if outcome in FAILURES)
        return WindowStats(
            calls=n,
            p50_ms=_pick(latencies, 0.50),
            p95_ms=_pick(latencies, 0.95),
            error_rate=failures / n if n else 0.0,
            timeout_rate=outcomes["timeout"] / n if n else 0.0,
            rate_limited_rate=outcomes["rate_limited"] / n if n else 0.0,
        )


def _pick(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)
