"""How many requests a worker may hold in flight: the configured ceiling, less when it lags.

Past saturation a worker that keeps taking work gets slower per request: more tasks
share one event loop, every produce batch and fetch waits behind them, and throughput
falls instead of levelling off. So the bound follows the loop's lag, additive increase
and multiplicative decrease (as TCP does with its window): while a timer fires late by
more than `target_lag_s`, the bound shrinks by `backoff`, down to `floor`; while it fires
on time, the bound grows by `step`, up to the ceiling. Below saturation the loop is on
time and the bound sits at the ceiling, so nothing changes; past it, requests wait in
Kafka (paused partitions) rather than in the worker's memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class AdaptiveBound:
    ceiling: int
    floor: int = 16
    target_lag_s: float = 0.05
    step: int = 8
    backoff: float = 0.7
    enabled: bool = True

    def __post_init__(self) -> None:
        self.floor = min(self.floor, self.ceiling)
        self.limit = self.ceiling
        self.lowest = self.ceiling

    def observe(self, lag_s: float) -> int:
        """Take one reading of the loop's lag; return the new limit."""
        if not self.enabled:
            return self.limit
        if lag_s > self.target_lag_s:
            self.limit = max(self.floor, int(self.limit * self.backoff))
        else:
            self.limit = min(self.ceiling, self.limit + self.step)
        self.lowest = min(self.lowest, self.limit)
        return self.limit


async def watch_lag(
    bounds: AdaptiveBound | Sequence[AdaptiveBound], stop: asyncio.Event, every_s: float = 0.1
) -> None:
    """Feed `bounds` how late a timer of `every_s` fires on this loop, until `stop`.

    One loop, one lag: the bounds of every tier a process serves share the watcher.
    """
    each = [bounds] if isinstance(bounds, AdaptiveBound) else list(bounds)
    while not stop.is_set():
        started = time.monotonic()
        try:
            await asyncio.wait_for(stop.wait(), timeout=every_s)
        except TimeoutError:
            lag = time.monotonic() - started - every_s
            for bound in each:
                bound.observe(lag)
