"""Routing by health: drop candidates the providers' state says not to try, order the rest.

After the plan (`decide.plan`) picks a tier's candidates, cheapest first, this
screen asks the health board (fed by every worker through `tierline.health`):

- a candidate whose circuit is open (or whose rate budget is cooling) is dropped;
- a candidate whose p95 is over its tier's latency limit is dropped (a request
  with `latency=interactive` tightens the limit);
- candidates of equal estimated cost are ordered by health: lower p95 first.

Every drop is in the decision's reasons ("skipped gpt-4.1-nano: circuit open
since 12:03:07 (...)"). When the screen would drop every candidate, it keeps
them all (and says so): the workers then hold the request until a provider comes
back, or its deadline, instead of the router failing it on a snapshot that may
be seconds old. The cascade and escalation lists are screened the same way.
"""

from __future__ import annotations

from decimal import Decimal

from tierline.processors.health.board import HealthBoard
from tierline.processors.pricing.catalog import Catalog
from tierline.processors.routing.cost_cap import estimate
from tierline.schemas import Escalation, LatencyClass, RoutedRequest, Tier


def screen_by_health(routed: RoutedRequest, board: HealthBoard, catalog: Catalog) -> RoutedRequest:
    """`routed` with unhealthy candidates dropped and equal-cost ones ordered by health."""
    reasons: list[str] = []
    tier = routed.decision.tier
    candidates = _screen(routed, routed.candidates, tier, board, catalog, reasons)
    cascade = _screen_escalation(routed, routed.cascade, board, catalog, reasons)
    escalation = _screen_escalation(routed, routed.escalation, board, catalog, reasons)
    if not reasons and candidates == routed.candidates:
        return routed
    decision = routed.decision.model_copy(update={"reasons": [*routed.decision.reasons, *reasons]})
    return routed.model_copy(
        update={
            "decision": decision,
            "candidates": candidates,
            "cascade": cascade,
            "escalation": escalation,
        }
    )


def latency_limit(board: HealthBoard, tier: Tier, latency: LatencyClass) -> float | None:
    """The p95 limit (ms) for `tier`, tightened for interactive requests."""
    policy = board.policy
    limit = policy.p95_limit_ms.get(tier)
    tight = policy.interactive_p95_limit_ms
    if latency is LatencyClass.INTERACTIVE and tight is not None:
        return tight if limit is None else min(limit, tight)
    return limit


def _screen_escalation(
    routed: RoutedRequest,
    escalation: Escalation | None,
    board: HealthBoard,
    catalog: Catalog,
    reasons: list[str],
) -> Escalation | None:
    if escalation is None:
        return None
    kept = _screen(routed, escalation.candidates, escalation.tier, board, catalog, reasons)
    return escalation.model_copy(update={"candidates": kept})


def _screen(
    routed: RoutedRequest,
    names: list[str],
    tier: Tier,
    board: HealthBoard,
    catalog: Catalog,
    reasons: list[str],
) -> list[str]:
    limit = latency_limit(board, tier, routed.request.hints.latency)
    kept: list[str] = []
    dropped: list[str] = []
    for name in names:
        model = catalog.models.get(name)
        if model is None:
            kept.append(name)  # the worker says what is wrong with it
            continue
        why = board.blocked(model) or board.too_slow(model, limit)
        if why is None:
            kept.append(name)
        else:
            dropped.append(f"skipped {name}: {why}")
    if not kept:
        reasons.append(
            f"every {tier} candidate is unhealthy ({'; '.join(dropped)}): kept them all, "
            "the workers hold the request until one recovers"
        )
        return list(names)
    reasons.extend(dropped)
    return _by_health(routed, kept, board, catalog)


def _by_health(
    routed: RoutedRequest, names: list[str], board: HealthBoard, catalog: Catalog
) -> list[str]:
    """The plan's order kept; within a run of neighbours of equal estimated cost, the
    lower p95 first (p95s are looked up only for such runs: most have one model)."""

    def cost(name: str) -> Decimal | None:
        model = catalog.models.get(name)
        return estimate(routed.request, model) if model is not None else None

    def p95(name: str) -> float:
        model = catalog.models.get(name)
        value = board.p95(model)[0] if model is not None else None
        return value if value is not None else 0.0

    runs: list[list[str]] = []
    last: Decimal | None = None
    for name in names:
        here = cost(name)
        if runs and here == last:
            runs[-1].append(name)
        else:
            runs.append([name])
        last = here
    return [name for run in runs for name in (sorted(run, key=p95) if len(run) > 1 else run)]
