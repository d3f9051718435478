"""The router's decision for one request, a pure function: classify, decide, pick candidates.

In order, each step narrowing what the previous one allowed:

1. the classifier's verdict and the tier rules (`TierRules.decide`: thresholds,
   tenants, floors, confidence; `min_tier`/`max_tier` always hold);
2. the tier's models, cheapest first, screened for sensitive data
   (`sensitivity_routing.screen`: only approved providers, else `policy_denied`);
3. `max_cost_usd`: when no approved model of the tier fits the budget (estimated,
   `processors.budget`), the next cheaper allowed tier is tried, down to the
   lowest the hints and tenant allow; when none fits, `budget_exceeded`;
4. an experiment may give the request its arm's models instead (recorded as
   `experiment=<name> arm=<arm>`), if the arm keeps steps 1-3;
5. otherwise a cascade task starts on the cheapest allowed tier and carries
   where to escalate (`RoutedRequest.cascade`); both calls fit the budget;
6. with `outage_escalation`, the next allowed tier up (its approved models within
   the budget) rides along as `RoutedRequest.escalation`: where a worker may go
   when the tier stays unusable until the request's deadline.

Whatever is chosen, every model in `candidates` and `cascade` is approved for
the request's sensitive classes, and every tier is inside the hints: a last
check refuses the request rather than let a bug route around the rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from tierline.processors.errors import InputError, PolicyError
from tierline.processors.pricing.catalog import Catalog
from tierline.processors.routing import cost_cap
from tierline.processors.routing.classifiers import Classifier
from tierline.processors.routing.experiments import assign
from tierline.processors.routing.experiments import reason as experiment_reason
from tierline.processors.routing.policy import Policy
from tierline.processors.routing.sensitivity_filter import approved_only, request_classes, screen
from tierline.processors.routing.tier_rules import TierRules
from tierline.schemas import ErrorType, RoutedRequest, RouteRequest, RoutingDecision, Tier
from tierline.schemas.routed import Escalation
from tierline.schemas.tier import LatencyClass


def route(
    request: RouteRequest,
    classifier: Classifier,
    policy: Policy | TierRules,
    catalog: Catalog,
    *,
    outage_escalation: bool = False,
) -> RoutedRequest:
    """The request, its decision, and its candidates; raises `TierlineError` subclasses."""
    rules = Policy.of(policy)
    decision = rules.routing.decide(request, classifier.classify(request))
    return plan(request, decision, rules, catalog, outage_escalation=outage_escalation)


def plan(
    request: RouteRequest,
    decision: RoutingDecision,
    policy: Policy,
    catalog: Catalog,
    *,
    outage_escalation: bool = False,
) -> RoutedRequest:
    """Steps 2-5 for a decided tier (see the module docstring)."""
    step = _Planner(request, policy, catalog)
    reasons = list(decision.reasons)
    tier, candidates = step.affordable(decision.tier, reasons)
    cascade: Escalation | None = None
    arm = step.experiment(decision.task, tier, reasons)
    if arm is not None:
        tier, candidates = arm
    elif policy.cascade.applies_to(decision.task):
        tier, candidates, cascade = step.cascade(tier, candidates, reasons)
    routed = RoutedRequest(
        request=request,
        decision=decision.model_copy(update={"tier": tier, "reasons": reasons}),
        candidates=list(candidates),
        cascade=cascade,
        escalation=step.outage_escalation(tier) if outage_escalation else None,
        routed_at=datetime.now(UTC),
    )
    step.verify(routed)
    return routed


@dataclass
class _Planner:
    request: RouteRequest
    policy: Policy
    catalog: Catalog

    def __post_init__(self) -> None:
        self.classes = request_classes(self.request, self.policy.sensitivity)
        self.providers: Mapping[str, str] = {
            name: spec.provider for name, spec in self.catalog.models.items()
        }
        self.limit: Decimal | None = self.request.hints.max_cost_usd
        self.options = self.policy.routing.options(self.request)

    # ------------------------------------------------------------------ steps

    def affordable(self, tier: Tier, reasons: list[str]) -> tuple[Tier, list[str]]:
        """The decided tier's approved models; with a budget, the nearest tier that fits it."""
        names = self.catalog.candidates(tier)
        if not names:
            raise InputError(f"tier {tier} has no models in the catalog", ErrorType.NO_CANDIDATE)
        screened = screen(names, self.classes, self.providers, self.policy.sensitivity)
        reasons.extend(screened.reasons)
        if self.limit is None:
            return tier, list(screened.candidates)
        cheapest_seen: Decimal | None = None
        for index, option in enumerate([tier, *self._cheaper_than(tier)]):
            approved = list(screened.candidates) if index == 0 else self._approved_tier(option)
            fits = self._within(approved, self.limit)
            estimate = self._cheapest(approved)
            if estimate is not None and (cheapest_seen is None or estimate < cheapest_seen):
                cheapest_seen = estimate
            if fits:
                if index > 0:
                    reasons.append(f"max_cost_usd {self.limit}: {tier} over budget: {option}")
                reasons.append(f"max_cost_usd {self.limit}: estimate {self._cheapest(fits)}")
                return option, fits
        seen = (
            "no allowed model to estimate"
            if cheapest_seen is None
            else f"the cheapest allowed model is estimated at {cheapest_seen}"
        )
        raise PolicyError(
            f"max_cost_usd {self.limit}: {seen} (prompt ~{cost_cap.prompt_tokens(self.request)} "
            f"tokens, output {cost_cap.output_tokens(self.request, self._output())} tokens)",
            ErrorType.BUDGET_EXCEEDED,
        )

    def experiment(
        self, task: str, tier: Tier, reasons: list[str]
    ) -> tuple[Tier, list[str]] | None:
        """The arm's tier and models, when an experiment takes the request and its arm fits."""
        hit = assign(self.policy.experiments, self.request, task, tier)
        if hit is None:
            return None
        experiment, arm = hit
        arm_tier = arm.tier or tier
        models = self._approved(arm.models, known_only=True)
        if self.limit is not None:
            models = self._within(models, self.limit)
        if not self._allowed(arm_tier):
            why = f"its tier {arm_tier} is outside the hints or the tenant's tiers"
        elif not models:
            why = "no model of it is known, approved and within budget"
        else:
            reasons.append(experiment_reason(experiment, arm))
            return arm_tier, models
        reasons.append(f"experiment {experiment.name} skipped (arm {arm.name}: {why})")
        return None

    def cascade(
        self, tier: Tier, candidates: list[str], reasons: list[str]
    ) -> tuple[Tier, list[str], Escalation | None]:
        """Start on the cheapest allowed tier; escalate to the chosen one (or the next up)."""
        if tier is Tier.BATCH or self.request.hints.latency is LatencyClass.BATCH:
            reasons.append("cascade skipped: batch lane")
            return tier, candidates, None
        cheap = self.options[0]
        first_tier: Tier
        up_tier: Tier
        if cheap.rank < tier.rank:
            first_tier, first, up_tier, up = cheap, self._approved_tier(cheap), tier, candidates
        else:
            above = [t for t in self.options if t.rank > tier.rank]
            if not above:
                reasons.append(f"cascade skipped: nothing allowed above {tier}")
                return tier, candidates, None
            first_tier, first = tier, candidates
            up_tier, up = above[0], self._approved_tier(above[0])
        if self.limit is not None:
            # both calls may be billed: the dearest first call plus the escalation must fit
            first = self._within(first, self.limit)
            spent = self._dearest(first)
            up = self._within(up, self.limit - spent) if spent is not None else []
        if not first or not up:
            reasons.append(
                f"cascade skipped: no approved model in budget on {first_tier}/{up_tier}"
            )
            return tier, candidates, None
        reasons.append(
            f"cascade: {first_tier} first, escalates to {up_tier} when the answer fails its check"
        )
        return first_tier, first, Escalation(tier=up_tier, candidates=up)

    def outage_escalation(self, tier: Tier) -> Escalation | None:
        """The next allowed tier up and its approved models within the budget, if any."""
        if tier is Tier.BATCH:
            return None
        for up in (t for t in self.options if t.rank > tier.rank and t is not Tier.BATCH):
            models = self._approved_tier(up)
            if self.limit is not None:
                models = self._within(models, self.limit)
            return Escalation(tier=up, candidates=models) if models else None
        return None

    def verify(self, routed: RoutedRequest) -> None:
        """The guarantees, checked on the result: approved providers only, tiers in bounds."""
        extra = [e for e in (routed.cascade, routed.escalation) if e is not None]
        lists = [routed.candidates] + [e.candidates for e in extra]
        tiers = [routed.decision.tier] + [e.tier for e in extra]
        for names in lists:
            if self._approved(names, known_only=True) != list(names):
                raise PolicyError(
                    "internal: a candidate is not approved for the request's sensitive data",
                    ErrorType.POLICY_DENIED,
                )
        for tier in tiers:
            if not self._allowed(tier):
                raise PolicyError(
                    f"internal: tier {tier} is outside the request's allowed tiers",
                    ErrorType.POLICY_DENIED,
                )

    # ------------------------------------------------------------------ helpers

    def _allowed(self, tier: Tier) -> bool:
        if tier is Tier.BATCH:  # no latency promise: only for requests that asked for none
            return (
                self.request.hints.latency is LatencyClass.BATCH
                and Tier.ECONOMY in self.options
                and self.policy.routing.rules_for(self.request.tenant).allows(Tier.BATCH)
            )
        return tier in self.options

    def _cheaper_than(self, tier: Tier) -> list[Tier]:
        """Allowed tiers below `tier`, nearest first (economy as the batch lane if batch)."""
        below = [t for t in reversed(self.options) if t.rank < tier.rank]
        return [self.policy.routing.lane(self.request, t) for t in below]

    def _approved(self, names: Sequence[str], *, known_only: bool = False) -> list[str]:
        listed = [n for n in names if not known_only or n in self.catalog.models]
        return approved_only(listed, self.classes, self.providers, self.policy.sensitivity)

    def _approved_tier(self, tier: Tier) -> list[str]:
        return self._approved(self.catalog.candidates(tier))

    def _output(self) -> int:
        return self.policy.default_output_tokens

    def _within(self, names: list[str], limit: Decimal) -> list[str]:
        return cost_cap.within(self.request, names, self.catalog.models, limit, self._output())

    def _cheapest(self, names: list[str]) -> Decimal | None:
        return cost_cap.cheapest(self.request, names, self.catalog.models, self._output())

    def _dearest(self, names: list[str]) -> Decimal | None:
        estimates = [
            cost_cap.estimate(self.request, self.catalog.models[n], self._output())
            for n in names
            if n in self.catalog.models
        ]
        return max(estimates) if estimates else None
