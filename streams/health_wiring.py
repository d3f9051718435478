"""The health loop's parts in a running process: the board from the settings, its
listeners feeding the metrics, and the gauges sampled from the workers.

`streams.runtime` calls these; each is small, and none knows of Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from tierline.processors.health.board import HealthBoard, HealthPolicy
from tierline.processors.health.breaker import BreakerPolicy
from tierline.schemas import Tier
from tierline.streams.config import HealthSettings
from tierline.streams.metrics import Metrics


def health_policy(settings: HealthSettings) -> HealthPolicy:
    return HealthPolicy(
        breaker=BreakerPolicy(
            failures_to_open=settings.failures_to_open,
            error_rate_to_open=settings.error_rate_to_open,
            min_calls_for_rate=settings.min_calls_for_rate,
            cooldown_s=settings.cooldown_s,
            max_cooldown_s=max(settings.max_cooldown_s, settings.cooldown_s),
            probes=settings.probes,
        ),
        window_calls=settings.window_calls,
        window_s=settings.window_s,
        p95_limit_ms=dict(settings.p95_limit_ms),
        interactive_p95_limit_ms=settings.interactive_p95_limit_ms,
        deadline_s=dict(settings.deadline_s),
    )


def health_board(settings: HealthSettings, replica: str) -> HealthBoard | None:
    """The process's board, or None when the health loop is off."""
    if not settings.enabled:
        return None
    return HealthBoard(health_policy(settings), replica=replica)


def report_to(board: HealthBoard, metrics: Metrics) -> None:
    """Every attempt and circuit change the board hears of, counted in `metrics`."""

    def attempt(provider: str, model: str, outcome: str, latency_s: float | None) -> None:
        metrics.provider_attempts.labels(provider, model, outcome).inc()
        if latency_s is not None:
            metrics.provider_latency.labels(provider, model).observe(latency_s)

    def transition(provider: str, model: str, state: str, reason: str) -> None:
        metrics.set_circuit(provider, model, state)
        metrics.circuit_transitions.labels(provider, model, state).inc()

    board.on_attempt.append(attempt)
    board.on_transition.append(transition)


async def sample_gauges(
    metrics: Metrics,
    tiers: list[Tier],
    in_flight: Callable[[Tier], int],
    board: HealthBoard | None,
    stop: asyncio.Event,
    every_s: float = 1.0,
) -> None:
    """In-flight and held requests per tier, sampled every `every_s` until `stop`."""
    while not stop.is_set():
        for tier in tiers:
            metrics.inflight.labels(tier.value).set(in_flight(tier))
            held = board.held[tier] if board is not None else 0
            metrics.held_requests.labels(tier.value).set(held)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)
