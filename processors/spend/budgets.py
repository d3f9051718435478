"""Budgets: how much a tenant (or one feature of it) may spend per UTC day or month.

From the policy file's `[[budgets]]` (`processors.routing.policy_file`):

    [[budgets]]
    tenant = "acme"              # "*" = every tenant without a budget of its own
    feature = "ticket-triage"    # optional: this feature of the tenant only
    period = "day"               # day | month, UTC calendar periods
    limit_usd = "25.00"          # hard cap: beyond it, `budget_exceeded`
    soft_limit_usd = "20.00"     # optional: beyond it, one tier cheaper, and an alert

A request is held to every budget that covers it: its tenant's whole-tenant
budget (or the "*" one when the tenant has none) and its feature's, if any.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

Period = Literal["day", "month"]
WILDCARD = "*"


@dataclass(frozen=True, slots=True)
class Budget:
    tenant: str
    period: Period
    limit_usd: Decimal
    feature: str | None = None
    soft_limit_usd: Decimal | None = None

    def __post_init__(self) -> None:
        if self.limit_usd < 0:
            raise ValueError(f"budget {self.scope}: limit_usd must be >= 0")
        if self.soft_limit_usd is not None and not 0 <= self.soft_limit_usd <= self.limit_usd:
            raise ValueError(f"budget {self.scope}: soft_limit_usd must be between 0 and limit_usd")

    @property
    def scope(self) -> str:
        return self.tenant + (f"/{self.feature}" if self.feature else "")


@dataclass(frozen=True, slots=True)
class Budgets:
    entries: tuple[Budget, ...] = ()

    def __post_init__(self) -> None:
        seen: set[tuple[str, str | None, str]] = set()
        for b in self.entries:
            key = (b.tenant, b.feature, b.period)
            if key in seen:
                raise ValueError(f"two budgets for {b.scope} per {b.period}: keep one")
            seen.add(key)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def covering(self, tenant: str, feature: str | None) -> list[Budget]:
        """The budgets a request of `tenant` (and `feature`) is held to."""
        own = [b for b in self.entries if b.tenant == tenant]
        whole = [b for b in own if b.feature is None]
        if not own:
            whole = [b for b in self.entries if b.tenant == WILDCARD and b.feature is None]
        features = [b for b in own if feature is not None and b.feature == feature]
        if not own and feature is not None:
            features = [b for b in self.entries if b.tenant == WILDCARD and b.feature == feature]
        return whole + features


def period_start(period: Period, now: datetime) -> datetime:
    """The start of the UTC calendar day or month `now` falls in."""
    now = now.astimezone(UTC)
    if period == "day":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
