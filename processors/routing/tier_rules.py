"""Routing policy: from a classifier's score to a tier, with the request's hints kept.

The score is cut by two thresholds into economy / standard / premium (a
tenant may bring its own thresholds and confidence floor). A low-confidence
verdict climbs one rung; a floor (`TierFloor`, e.g. learned from feedback by
`tierline train --from-clickhouse`) may lift a task further. Then the limits:
the hints' `min_tier` and `max_tier` always hold, and a tenant's allowed tiers
are kept within them — when nothing satisfies both, the request is refused
with a typed `policy_denied` error, never routed outside its hints. Last,
`latency=batch` work that lands on economy goes to the batch lane.

Each step that moves the tier leaves a reason; the reasons travel with the
request and land in every cost row it bills.

`options()` lists the ladder tiers a request may use at all (hints and
tenant); the router's budget step-down and the cascade pick only from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tierline.processors.errors import PolicyError
from tierline.processors.routing.classifiers import Classification
from tierline.schemas import ErrorType, RouteRequest, RoutingDecision, Tier
from tierline.schemas.tier import LatencyClass


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Scores at or above `standard` leave economy; at or above `premium` go premium."""

    standard: float = 0.35
    premium: float = 0.7

    def __post_init__(self) -> None:
        if not 0 <= self.standard <= self.premium <= 1:
            raise ValueError(f"thresholds must satisfy 0 <= standard <= premium <= 1: {self}")

    def tier_for(self, score: float) -> Tier:
        if score >= self.premium:
            return Tier.PREMIUM
        if score >= self.standard:
            return Tier.STANDARD
        return Tier.ECONOMY


@dataclass(frozen=True, slots=True)
class TenantRules:
    """One tenant's overrides. `None` = as the policy says; `allowed_tiers` None = all."""

    thresholds: Thresholds | None = None
    confidence_floor: float | None = None
    allowed_tiers: frozenset[Tier] | None = None

    def __post_init__(self) -> None:
        if self.allowed_tiers is not None and not self.allowed_tiers & set(Tier.ladder()):
            raise ValueError("allowed_tiers must include economy, standard or premium")
        if self.confidence_floor is not None and not 0 <= self.confidence_floor <= 1:
            raise ValueError(f"confidence_floor must be in [0, 1]: {self.confidence_floor}")

    def allows(self, tier: Tier) -> bool:
        return self.allowed_tiers is None or tier in self.allowed_tiers


ALL_TIERS = TenantRules()


@dataclass(frozen=True, slots=True)
class TierFloor:
    """Requests of `task` (and `feature`, `tenant` when set) go no lower than `min_tier`."""

    task: str
    min_tier: Tier
    feature: str | None = None
    tenant: str | None = None

    def __post_init__(self) -> None:
        if self.min_tier is Tier.BATCH:
            raise ValueError("a floor's min_tier is a capability tier: economy/standard/premium")

    def matches(self, request: RouteRequest, task: str) -> bool:
        return (
            task == self.task
            and (self.feature is None or self.feature == request.metadata.feature)
            and (self.tenant is None or self.tenant == request.tenant)
        )

    def describe(self) -> str:
        parts = [f"task={self.task}"]
        if self.feature is not None:
            parts.append(f"feature={self.feature}")
        if self.tenant is not None:
            parts.append(f"tenant={self.tenant}")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class TierRules:
    thresholds: Thresholds = Thresholds()
    #: below this confidence, a verdict climbs one tier (0 disables)
    confidence_floor: float = 0.0
    tenants: Mapping[str, TenantRules] = field(default_factory=dict, hash=False)
    floors: tuple[TierFloor, ...] = ()

    def rules_for(self, tenant: str) -> TenantRules:
        return self.tenants.get(tenant, ALL_TIERS)

    def decide(self, request: RouteRequest, verdict: Classification) -> RoutingDecision:
        """The tier for `request`; raises `PolicyError` (policy_denied) when no tier is allowed."""
        rules = self.rules_for(request.tenant)
        thresholds = rules.thresholds or self.thresholds
        floor = self.confidence_floor if rules.confidence_floor is None else rules.confidence_floor
        reasons = list(verdict.reasons)
        tier = thresholds.tier_for(verdict.score)
        own = " (tenant thresholds)" if rules.thresholds is not None else ""
        reasons.append(f"score {verdict.score:.2f} -> {tier}{own}")
        if verdict.confidence < floor and tier is not Tier.PREMIUM:
            tier = Tier.ladder()[tier.rank + 1]
            reasons.append(f"confidence {verdict.confidence:.2f} below floor: up to {tier}")
        for rule in self.floors:
            if rule.matches(request, verdict.task) and tier.rank < rule.min_tier.rank:
                tier = rule.min_tier
                reasons.append(f"floor {rule.describe()}: up to {tier}")
        hints = request.hints
        if hints.min_tier is not None and tier.rank < hints.min_tier.rank:
            tier = _capability(hints.min_tier)
            reasons.append(f"min_tier hint: {tier}")
        if hints.max_tier is not None and tier.rank > hints.max_tier.rank:
            tier = _capability(hints.max_tier)
            reasons.append(f"max_tier hint: {tier}")
        if not rules.allows(tier):
            tier = self._nearest_allowed(request, tier)
            reasons.append(f"tenant {request.tenant} allows {_names(rules)}: {tier}")
        tier = self.lane(request, tier, reasons)
        return RoutingDecision(
            task=verdict.task,
            tier=tier,
            score=min(1.0, max(0.0, verdict.score)),
            confidence=min(1.0, max(0.0, verdict.confidence)),
            reasons=reasons,
        )

    def options(self, request: RouteRequest) -> list[Tier]:
        """Ladder tiers the hints and the tenant allow for `request`, cheapest first."""
        rules = self.rules_for(request.tenant)
        hints = request.hints
        low = hints.min_tier.rank if hints.min_tier is not None else 0
        high = hints.max_tier.rank if hints.max_tier is not None else Tier.PREMIUM.rank
        return [t for t in Tier.ladder() if low <= t.rank <= high and rules.allows(t)]

    def lane(self, request: RouteRequest, tier: Tier, reasons: list[str] | None = None) -> Tier:
        """Economy work with `latency=batch` rides the batch lane, if the tenant allows it."""
        if (
            tier is Tier.ECONOMY
            and request.hints.latency is LatencyClass.BATCH
            and self.rules_for(request.tenant).allows(Tier.BATCH)
        ):
            if reasons is not None:
                reasons.append("latency=batch: batch lane")
            return Tier.BATCH
        return tier

    def _nearest_allowed(self, request: RouteRequest, tier: Tier) -> Tier:
        """The allowed tier nearest `tier`, preferring the rung above (quality over cost)."""
        options = self.options(request)
        if not options:
            hints = request.hints
            raise PolicyError(
                f"tenant {request.tenant} allows tiers {_names(self.rules_for(request.tenant))}; "
                f"the request's hints ask for {hints.min_tier or Tier.ECONOMY}.."
                f"{hints.max_tier or Tier.PREMIUM}",
                ErrorType.POLICY_DENIED,
            )
        above = [t for t in options if t.rank > tier.rank]
        return above[0] if above else options[-1]


def _capability(tier: Tier) -> Tier:
    """A hint naming the batch lane means its rung on the ladder: economy."""
    return Tier.ECONOMY if tier is Tier.BATCH else tier


def _names(rules: TenantRules) -> str:
    allowed = rules.allowed_tiers if rules.allowed_tiers is not None else frozenset(Tier)
    return ",".join(str(t) for t in Tier if t in allowed)
