"""The budget gate: the last step of routing, where a request's worst case meets its budgets.

Given the routed request (its tier, candidates, cascade and outage escalation)
and the ledger of its tenant's partition:

1. the worst case: the dearest candidate's estimate (prompt tokens, plus
   `max_tokens` or the policy's default output estimate), plus the dearest
   cascade escalation's (a cascade may bill both), or the dearest outage
   escalation's if that is dearer (only one of the two tiers answers);
2. over a soft limit, or over the hard one: the request is planned again one
   tier cheaper (never below its `min_tier`, nor outside the tenant's tiers),
   the reasons say so, and a crossed soft limit raises `soft_limit_crossed`
   once per period;
3. still over a hard limit: refused with `budget_exceeded` (no provider call,
   no cost row), and `hard_limit_reached` raised once per period;
4. otherwise the worst case is reserved on every covering account.

Pure: the ledger changes and the alerts to publish are returned; `streams`
publishes them with the forward, in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tierline.processors.errors import PolicyError
from tierline.processors.pricing.catalog import Catalog
from tierline.processors.routing import cost_cap
from tierline.processors.routing.decide import plan
from tierline.processors.routing.policy import Policy
from tierline.processors.spend.budgets import period_start
from tierline.processors.spend.ledger import Crossing, Entry, Ledger
from tierline.schemas import Alert, AlertKind, ErrorType, RoutedRequest, Tier


@dataclass(slots=True)
class GateResult:
    routed: RoutedRequest
    #: the ledger's changelog entries to publish with the forward
    entries: list[Entry] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)


def worst_case(routed: RoutedRequest, catalog: Catalog, default_output: int) -> Decimal:
    """The most the request may cost, as the module docstring counts it."""

    def dearest(names: list[str]) -> Decimal:
        estimates = [
            cost_cap.estimate(routed.request, catalog.models[n], default_output)
            for n in names
            if n in catalog.models
        ]
        return max(estimates, default=Decimal(0))

    first = dearest(routed.candidates)
    cascade = dearest(routed.cascade.candidates) if routed.cascade else Decimal(0)
    outage = dearest(routed.escalation.candidates) if routed.escalation else Decimal(0)
    return max(first + cascade, outage)


def gate(
    routed: RoutedRequest, policy: Policy, catalog: Catalog, ledger: Ledger, now: datetime
) -> GateResult:
    """Admit (and reserve), re-plan one tier cheaper, or raise `budget_exceeded`."""
    budgets = policy.budgets
    request = routed.request
    feature = request.metadata.feature
    amount = worst_case(routed, catalog, policy.default_output_tokens)
    verdict = ledger.check(budgets, request.tenant, feature, amount, now)
    result = GateResult(routed)
    if verdict.soft or verdict.hard:
        # near or at a limit: one tier cheaper first, which may still fit under the cap
        result.entries += _alert(ledger, verdict.soft, now, result.alerts)
        cheaper = _one_tier_cheaper(routed, policy, catalog, (verdict.soft + verdict.hard)[0])
        if cheaper is not None and cheaper.decision.tier != routed.decision.tier:
            amount = worst_case(cheaper, catalog, policy.default_output_tokens)
            verdict = ledger.check(budgets, request.tenant, feature, amount, now)
        result.routed = cheaper or routed
    if verdict.hard:
        result.entries += _alert(ledger, verdict.hard, now, result.alerts)
        crossing = verdict.hard[0]
        raise BudgetExceeded(
            f"budget {crossing.budget.scope} per {crossing.budget.period}: "
            f"{_usd(crossing.committed)} of {_usd(crossing.budget.limit_usd)} spent or "
            f"reserved; this request may cost up to {_usd(amount)}",
            result,
        )
    result.entries += ledger.reserve(request.key, amount, verdict)
    return result


class BudgetExceeded(PolicyError):
    """A hard limit refuses the request; `result` still holds the alert to publish."""

    error_type = ErrorType.BUDGET_EXCEEDED

    def __init__(self, message: str, result: GateResult) -> None:
        super().__init__(message, ErrorType.BUDGET_EXCEEDED)
        self.result = result


def _one_tier_cheaper(
    routed: RoutedRequest, policy: Policy, catalog: Catalog, crossing: Crossing
) -> RoutedRequest | None:
    """The request planned one tier down the ladder, when its hints and tenant allow it."""
    request, decision = routed.request, routed.decision
    tier = decision.tier
    if tier is Tier.BATCH or tier.rank == 0:
        return _noted(
            routed, f"{crossing.kind} limit of {crossing.budget.scope}: already the cheapest tier"
        )
    lower = Tier.ladder()[tier.rank - 1]
    floor = request.hints.min_tier
    allowed = policy.routing.options(request)
    if (floor is not None and lower.rank < floor.rank) or lower not in allowed:
        return _noted(
            routed, f"{crossing.kind} limit of {crossing.budget.scope}: {lower} not allowed"
        )
    limit = crossing.budget.soft_limit_usd if crossing.kind == "soft" else None
    why = (
        f"{crossing.kind} limit of {crossing.budget.scope} per {crossing.budget.period} "
        f"({_usd(crossing.committed)} of {_usd(limit or crossing.budget.limit_usd)}): "
        f"{tier} -> {lower}"
    )
    lowered = decision.model_copy(update={"tier": lower, "reasons": [*decision.reasons, why]})
    try:
        return plan(
            request, lowered, policy, catalog, outage_escalation=routed.escalation is not None
        )
    except Exception:  # noqa: BLE001 - the cheaper plan failing keeps the request as routed
        return _noted(
            routed, f"{crossing.kind} limit of {crossing.budget.scope}: no plan on {lower}"
        )


def _noted(routed: RoutedRequest, reason: str) -> RoutedRequest:
    decision = routed.decision
    return routed.model_copy(
        update={"decision": decision.model_copy(update={"reasons": [*decision.reasons, reason]})}
    )


def _alert(
    ledger: Ledger, crossings: list[Crossing], now: datetime, out: list[Alert]
) -> list[Entry]:
    entries: list[Entry] = []
    for crossing in crossings:
        if not crossing.alert:
            continue
        budget = crossing.budget
        limit = budget.limit_usd if crossing.kind == "hard" else budget.soft_limit_usd
        kind: AlertKind = "hard_limit_reached" if crossing.kind == "hard" else "soft_limit_crossed"
        key = crossing.key
        out.append(
            Alert(
                alert_id=f"{kind}:{key.tenant}:{key.feature}:{key.period}:{key.start}",
                kind=kind,
                tenant=key.tenant,
                feature=key.feature,
                period=key.period,
                window_start=period_start(budget.period, now),
                spent_usd=crossing.committed,
                limit_usd=limit or Decimal(0),
                detail=f"budget {budget.scope} per {budget.period}: {_usd(crossing.committed)} "
                f"spent or reserved, limit {_usd(limit or Decimal(0))}",
                created_at=now,
            )
        )
        entries += ledger.alerted(crossing)
    return entries


def _usd(amount: Decimal) -> str:
    return "$" + format(amount, "f")


__all__ = ["BudgetExceeded", "GateResult", "gate", "worst_case"]
