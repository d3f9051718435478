"""The circuit breaker of one (provider, model): stop calling what keeps failing.

    closed ──(N consecutive failures, or an error rate over the window)──▶ open
    open ──(cool-down passed)──▶ half_open: up to `probes` calls go through
    half_open ──(a probe succeeds)──▶ closed
    half_open ──(a probe fails)──▶ open again, for twice the cool-down (capped)

What counts as a failure is the provider's fault: timeouts, refused or dropped
connections, 5xx, overload, garbage replies. A 429 is not (it is a capacity
signal: the model's rate budget cools instead), nor is a bad request (ours) or a
filtered answer. An auth failure pins the circuit open until the configuration
changes: no cool-down makes a wrong key right.

Times are wall-clock seconds (`time.time()`), because replicas share circuits
through `tierline.health` and compare when each change happened.
"""

from __future__ import annotations

from dataclasses import dataclass

from tierline.schemas import CircuitState


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    #: consecutive failures that open the circuit
    failures_to_open: int = 5
    #: or: this share of failures among the window's calls ...
    error_rate_to_open: float = 0.5
    #: ... once the window holds at least this many calls
    min_calls_for_rate: int = 20
    #: how long the circuit stays open the first time
    cooldown_s: float = 5.0
    #: each failed probe doubles the cool-down, up to this
    max_cooldown_s: float = 60.0
    #: calls let through at once while half-open
    probes: int = 1


class Circuit:
    """One model's breaker. `admit` before a call; `succeeded`/`failed` after it."""

    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        self.state: CircuitState = "closed"
        #: 0 = never changed: any replica's recorded change is newer (a warm start)
        self.changed_at = 0.0
        self.open_until: float | None = None
        self.reason = ""
        #: open until the configuration changes (an auth failure)
        self.pinned = False
        self._cooldown = policy.cooldown_s
        self._consecutive = 0
        self._probing = 0

    def admit(self, now: float) -> bool:
        """Whether a call may be made now; a half-open circuit counts it as a probe."""
        if self.state == "open":
            if self.pinned or self.open_until is None or now < self.open_until:
                return False
            self._move("half_open", now, f"cool-down over; probing ({self.reason})")
        if self.state == "half_open":
            if self._probing >= self.policy.probes:
                return False
            self._probing += 1
        return True

    def usable(self, now: float) -> bool:
        """Whether `admit` would let a call through now (without counting a probe)."""
        if self.state == "closed":
            return True
        if self.state == "half_open":
            return self._probing < self.policy.probes
        return not self.pinned and self.open_until is not None and now >= self.open_until

    def release(self) -> None:
        """A probe admitted but never made (the walk moved on): free its slot."""
        if self.state == "half_open" and self._probing > 0:
            self._probing -= 1

    def succeeded(self, now: float) -> bool:
        """Record a good call; True when that closed the circuit."""
        self._consecutive = 0
        if self.state == "closed":
            return False
        if self.state == "open":
            # a call admitted before another replica opened it came back fine: believe it
            self._probing = 0
        self._cooldown = self.policy.cooldown_s
        self._move("closed", now, "a call succeeded")
        return True

    def failed(self, now: float, why: str, error_rate: float, calls: int) -> bool:
        """Record a provider failure; True when that opened the circuit."""
        self._consecutive += 1
        if self.state == "half_open":
            self._cooldown = min(self.policy.max_cooldown_s, self._cooldown * 2)
            self._open(now, f"probe failed: {why}")
            return True
        if self.state == "open":
            return False
        policy = self.policy
        if self._consecutive >= policy.failures_to_open:
            self._open(now, f"{self._consecutive} consecutive failures, last: {why}")
            return True
        if calls >= policy.min_calls_for_rate and error_rate >= policy.error_rate_to_open:
            self._open(now, f"error rate {error_rate:.0%} over {calls} calls, last: {why}")
            return True
        return False

    def pin_open(self, now: float, why: str) -> bool:
        """Open until the configuration changes; True if it was not pinned already."""
        if self.pinned:
            return False
        self.pinned = True
        self.open_until = None
        self._move("open", now, why)
        return True

    def adopt(
        self, state: CircuitState, changed_at: float, open_until: float | None, reason: str
    ) -> bool:
        """Take another replica's newer view of this circuit; True if it changed ours."""
        if changed_at <= self.changed_at or self.pinned:
            return False
        if state == self.state and open_until == self.open_until:
            self.changed_at = changed_at
            return False
        self.state = state
        self.changed_at = changed_at
        self.open_until = open_until if state == "open" else None
        self.reason = reason
        self._probing = 0
        self._consecutive = 0
        return True

    def _open(self, now: float, why: str) -> None:
        self.open_until = now + self._cooldown
        self._move("open", now, why)

    def _move(self, state: CircuitState, now: float, why: str) -> None:
        self.state = state
        self.changed_at = now
        self.reason = why
        self._probing = 0
        if state == "closed":
            self.open_until = None
