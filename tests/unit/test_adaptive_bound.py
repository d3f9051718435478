"""The in-flight bound backs off while the loop lags and returns to the ceiling when it does not."""

from __future__ import annotations

import asyncio
import time

from tierline.streams.adaptive_bound import AdaptiveBound, watch_lag


def test_on_time_readings_keep_the_ceiling() -> None:
    bound = AdaptiveBound(ceiling=512)
    assert all(bound.observe(0.001) == 512 for _ in range(20))


def test_lag_shrinks_the_bound_multiplicatively_down_to_the_floor() -> None:
    bound = AdaptiveBound(ceiling=512, floor=16)
    assert bound.observe(0.2) == 358
    assert bound.observe(0.2) == 250
    for _ in range(50):
        bound.observe(0.2)
    assert bound.limit == 16 and bound.lowest == 16


def test_recovery_is_additive() -> None:
    bound = AdaptiveBound(ceiling=100, floor=10, step=8)
    for _ in range(20):
        bound.observe(1.0)
    assert bound.limit == 10
    assert [bound.observe(0.0) for _ in range(3)] == [18, 26, 34]
    for _ in range(20):
        bound.observe(0.0)
    assert bound.limit == 100


def test_disabled_is_the_fixed_ceiling() -> None:
    bound = AdaptiveBound(ceiling=64, enabled=False)
    assert bound.observe(5.0) == 64


async def test_a_blocked_loop_is_seen_as_lag() -> None:
    bound = AdaptiveBound(ceiling=512)
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_lag(bound, stop, every_s=0.02))
    await asyncio.sleep(0.05)
    time.sleep(0.3)  # noqa: ASYNC251 - the point: a loop too busy to run its timers
    await asyncio.sleep(0.05)
    stop.set()
    await watcher
    assert bound.lowest < 512
