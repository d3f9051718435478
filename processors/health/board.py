"""The health board: every (provider, model)'s circuit, latency window and rate budget.

One board per process. The walk asks it before each call (`blocked`, `admit`,
`has_room`) and tells it every outcome (`observe`); the router asks it which
candidates to skip (`blocked`, `too_slow`); `streams.health_feed` publishes its
snapshots to `tierline.health` and merges the other replicas' in (`merge`).
Anything that changes a circuit wakes the requests held for one (`wait_change`),
and listeners (metrics) hear of every attempt and transition.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tierline.processors.health.announced import Announced
from tierline.processors.health.breaker import BreakerPolicy, Circuit
from tierline.processors.health.budget import RateBudget
from tierline.processors.health.window import FAILURES, LatencyWindow
from tierline.processors.pricing.catalog import ModelSpec
from tierline.schemas import CircuitState, HealthSnapshot, LatencyClass, Tier

log = logging.getLogger("tierline.health")

DEFAULT_DEADLINES: Mapping[LatencyClass, float] = {
    LatencyClass.INTERACTIVE: 30.0,
    LatencyClass.STANDARD: 300.0,
    LatencyClass.BATCH: 86400.0,
}


@dataclass(frozen=True)
class HealthPolicy:
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    window_calls: int = 200
    #: calls older than this leave the window (a skipped slow model comes back after it)
    window_s: float = 60.0
    #: a p95 is judged only over at least this many calls
    min_calls_for_p95: int = 10
    #: per tier: candidates whose p95 is over it are skipped by the router
    p95_limit_ms: Mapping[Tier, float] = field(default_factory=dict)
    #: `latency=interactive` requests tighten the tier's limit to this
    interactive_p95_limit_ms: float | None = None
    #: how long a request may be held for a usable provider, per latency class
    deadline_s: Mapping[LatencyClass, float] = field(default_factory=lambda: DEFAULT_DEADLINES)
    #: another replica's latency figures are trusted this long after it sent them
    peer_max_age_s: float = 30.0


class ModelHealth:
    """What the board knows of one model."""

    def __init__(self, provider: str, model: str, policy: HealthPolicy) -> None:
        self.provider = provider
        self.model = model
        self.circuit = Circuit(policy.breaker)
        self.window = LatencyWindow(policy.window_calls, policy.window_s)
        self.budget = RateBudget()
        #: the newest snapshot another replica sent of this model
        self.peer: HealthSnapshot | None = None

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.model}"


#: (provider, model, outcome, latency seconds or None)
AttemptListener = Callable[[str, str, str, float | None], None]
#: (provider, model, new state, reason)
TransitionListener = Callable[[str, str, CircuitState, str], None]


class HealthBoard:
    def __init__(
        self,
        policy: HealthPolicy | None = None,
        *,
        replica: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy or HealthPolicy()
        self.replica = replica
        self.clock = clock
        self._models: dict[str, ModelHealth] = {}
        self._changed = asyncio.Event()
        #: keys whose circuit changed since the feed last took them
        self._dirty: set[str] = set()
        self.on_attempt: list[AttemptListener] = []
        self.on_transition: list[TransitionListener] = []
        #: requests waiting for a usable provider, per tier, and the tasks holding them
        self.held: collections.Counter[Tier] = collections.Counter()
        self.held_for: collections.Counter[str] = collections.Counter()
        self.holders: set[asyncio.Task[Any]] = set()

    # ----------------------------------------------------------------- lookups

    def of(self, model: ModelSpec) -> ModelHealth:
        health = self._get(model.provider, model.name)
        budget = health.budget
        configured = (model.rpm, model.tpm)
        if configured != (None, None) and budget.announced is None and not budget.configured:
            health.budget = RateBudget(model.rpm, model.tpm, configured=True)
        return health

    def _get(self, provider: str, model: str) -> ModelHealth:
        key = f"{provider}/{model}"
        health = self._models.get(key)
        if health is None:
            health = self._models[key] = ModelHealth(provider, model, self.policy)
        return health

    def models(self) -> list[ModelHealth]:
        return list(self._models.values())

    # ------------------------------------------------------------ before a call

    def blocked(self, model: ModelSpec) -> str | None:
        """Why `model` may not be called now (its circuit, a cool-down), or None."""
        health = self.of(model)
        now = self.clock()
        circuit = health.circuit
        if not circuit.usable(now):
            if circuit.pinned:
                return f"circuit open until the configuration changes: {circuit.reason}"
            if circuit.state == "half_open":
                return f"circuit half-open, probe in flight ({circuit.reason})"
            since = _clock_time(circuit.changed_at)
            return f"circuit open since {since} ({circuit.reason})"
        cooling = health.budget.cooling(now)
        if cooling > 0:
            return f"rate limited for {cooling:.1f}s more"
        return None

    def admit(self, model: ModelSpec) -> bool:
        """Claim a call on `model` (a probe slot when half-open); False when blocked."""
        health = self.of(model)
        circuit = health.circuit
        before = circuit.state
        admitted = circuit.admit(self.clock())
        if circuit.state != before:
            self._transition(health)
        return admitted

    def release(self, model: ModelSpec) -> None:
        self.of(model).circuit.release()

    def too_slow(self, model: ModelSpec, limit_ms: float | None) -> str | None:
        """Why `model` is too slow for `limit_ms` (its p95 over it), or None."""
        if limit_ms is None:
            return None
        p95, calls = self.p95(model)
        if p95 is None or calls < self.policy.min_calls_for_p95 or p95 <= limit_ms:
            return None
        return f"p95 {p95:.0f} ms over the {limit_ms:.0f} ms limit ({calls} calls)"

    def p95(self, model: ModelSpec) -> tuple[float | None, int]:
        """The model's p95 and the calls behind it: our own window, else a fresh peer's."""
        health = self.of(model)
        now = self.clock()
        own = health.window.stats(now)
        if own.calls >= self.policy.min_calls_for_p95:
            return own.p95_ms, own.calls
        peer = health.peer
        if peer is not None and now - peer.updated_at.timestamp() <= self.policy.peer_max_age_s:
            return peer.p95_ms, peer.calls
        return own.p95_ms, own.calls

    def next_change_in(self, models: list[ModelSpec]) -> float | None:
        """Seconds until one of `models` may be usable again by the clock alone (a
        cool-down or an open circuit's timer ends); None if only an event can."""
        now = self.clock()
        waits: list[float] = []
        for model in models:
            health = self.of(model)
            circuit = health.circuit
            if circuit.state == "open" and circuit.open_until is not None:
                waits.append(max(0.0, circuit.open_until - now))
            cooling = health.budget.cooling(now)
            if cooling > 0:
                waits.append(cooling)
        return min(waits) if waits else None

    def recoverable(self, model: ModelSpec) -> bool:
        """Whether waiting can make `model` usable (not pinned open by an auth failure)."""
        return not self.of(model).circuit.pinned

    # ------------------------------------------------------------- after a call

    def observe(
        self,
        model: ModelSpec,
        outcome: str,
        latency_ms: float | None = None,
        *,
        retry_after_s: float | None = None,
        why: str = "",
    ) -> None:
        """One call's outcome: "ok" or its error type."""
        health = self.of(model)
        now = self.clock()
        health.window.add(now, outcome, latency_ms)
        circuit = health.circuit
        changed = False
        if outcome == "ok":
            changed = circuit.succeeded(now)
        elif outcome == "rate_limited":
            circuit.release()  # a capacity signal, not a fault
            health.budget.rate_limited(now, retry_after_s)
            self._dirty.add(health.key)
        elif outcome == "auth":
            changed = circuit.pin_open(now, f"auth failure: {why}")
            if changed:
                log.error(
                    "%s: authentication failed (%s); its circuit stays OPEN until the "
                    "configuration changes: fix the key and restart",
                    health.key,
                    why,
                )
        elif outcome in FAILURES:
            stats = health.window.stats(now)
            changed = circuit.failed(now, why or outcome, stats.error_rate, stats.calls)
        else:
            circuit.release()  # ours or the request's fault: says nothing of the provider
        for listener in self.on_attempt:
            listener(health.provider, health.model, outcome, _seconds(latency_ms))
        if changed:
            self._transition(health)

    def announced(self, model: ModelSpec, limits: Announced) -> None:
        """The limits a reply's headers stated."""
        health = self.of(model)
        before = health.budget.cool_until
        health.budget.tighten(limits, self.clock())
        if health.budget.cool_until != before:
            self._dirty.add(health.key)

    # ------------------------------------------------------------------ holding

    async def wait_change(self, timeout_s: float) -> None:
        """Return when any circuit changes, or after `timeout_s`."""
        event = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=max(0.0, timeout_s))

    @contextlib.contextmanager
    def holding(self, tier: Tier, models: list[ModelSpec] | None = None) -> Iterator[None]:
        """Count a request of `tier` (its task, and the models it waits for) as held
        while the block runs."""
        task = asyncio.current_task()
        keys = [self.of(m).key for m in models or []]
        self.held[tier] += 1
        self.held_for.update(keys)
        if task is not None:
            self.holders.add(task)
        try:
            yield
        finally:
            self.held[tier] -= 1
            self.held_for.subtract(keys)
            if task is not None:
                self.holders.discard(task)

    # ---------------------------------------------------------------- replicas

    def take_dirty(self) -> set[str]:
        dirty, self._dirty = self._dirty, set()
        return dirty

    def snapshot(self, health: ModelHealth) -> HealthSnapshot:
        now = self.clock()
        stats = health.window.stats(now)
        circuit = health.circuit
        budget = health.budget
        announced = budget.announced or Announced()
        return HealthSnapshot(
            provider=health.provider,
            model=health.model,
            circuit=circuit.state,
            changed_at=_utc(circuit.changed_at),
            open_until=_utc(circuit.open_until) if circuit.open_until is not None else None,
            reason=circuit.reason[:500],
            p50_ms=stats.p50_ms,
            p95_ms=stats.p95_ms,
            calls=stats.calls,
            error_rate=round(stats.error_rate, 4),
            timeout_rate=round(stats.timeout_rate, 4),
            rate_limited_rate=round(stats.rate_limited_rate, 4),
            rpm_limit=budget.rpm,
            rpm_remaining=announced.requests_remaining,
            tpm_limit=budget.tpm,
            tpm_remaining=announced.tokens_remaining,
            cool_until=_utc(budget.cool_until) if budget.cool_until > now else None,
            held=max(0, self.held_for[health.key]),
            replica=self.replica,
            updated_at=_utc(now),
        )

    def merge(self, snapshot: HealthSnapshot) -> bool:
        """Another replica's snapshot: adopt its circuit if its change is newer, its
        cool-down if longer; keep its latency figures as the peer view."""
        if snapshot.replica == self.replica and self.replica:
            return False
        health = self._get(snapshot.provider, snapshot.model)
        health.peer = snapshot
        open_until = snapshot.open_until.timestamp() if snapshot.open_until else None
        changed = health.circuit.adopt(
            snapshot.circuit,
            snapshot.changed_at.timestamp(),
            open_until,
            f"{snapshot.reason} (seen by {snapshot.replica or 'another replica'})",
        )
        if snapshot.cool_until is not None:
            cool = snapshot.cool_until.timestamp()
            health.budget.cool_until = max(health.budget.cool_until, cool)
        if changed:
            self._transition(health, publish=False)
        return changed

    def _transition(self, health: ModelHealth, *, publish: bool = True) -> None:
        circuit = health.circuit
        log.warning("%s: circuit %s (%s)", health.key, circuit.state, circuit.reason)
        if publish:
            self._dirty.add(health.key)
        for listener in self.on_transition:
            listener(health.provider, health.model, circuit.state, circuit.reason)
        self._changed.set()
        self._changed = asyncio.Event()


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _clock_time(t: float) -> str:
    return _utc(t).strftime("%H:%M:%S")


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000
