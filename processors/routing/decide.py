"""The router's decision for one request, a pure function: classify, decide, pick candidates.

In order, each step narrowing what the previous one allowed:

1. the classifier's verdict and the tier rules (`TierRules.decide`: thresholds,
   tenants, floors, confidence; `min_tier`/`max_tier` always hold);
2. the tier's models, cheapest first, that can serve the request
   (`capability_filter`: tools, images, json_schema; when none of the tier can,
   the nearest allowed tier that has one, above first; none anywhere is
   `no_candidate`), screened for sensitive data (`sensitivity_routing.screen`:
   only approved providers, else `policy_denied`);
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

A request that pins a model (`hints.model`) skips steps 2-6: its one candidate is
that model, on the decided tier when that tier lists it, else on the cheapest
allowed tier that does (`_Planner.pinned`); it must still be approved for the
request's sensitive data, have what the request needs and fit `max_cost_usd`, or
the request is refused.

Whatever is chosen, every model in `candidates` and `cascade` is approved for
the request's sensitive classes and lacks nothing the request needs, and every
tier is inside the hints: a last check refuses the request rather than let a bug
route around the rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from tierline.processors.errors import InputError, PolicyError
from tierline.processors.pricing.capabilities import needed
from tierline.processors.pricing.catalog import Catalog
from tierline.processors.routing import cost_cap
from tierline.processors.routing.capability_filter import (
    fit,
    needs_label,
    no_capable_model,
    pinned_lacks,
)
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
    cascade: Escalation | None = None
    escalation: Escalation | None = None
    if request.hints.model is not None:
        tier, candidates = step.pinned(request.hints.model, decision.tier, reasons)
    else:
        tier, candidates = step.affordable(decision.tier, reasons)
        arm = step.experiment(decision.task, tier, reasons)
        if arm is not None:
            tier, candidates = arm
        elif policy.cascade.applies_to(decision.task):
            tier, candidates, cascade = step.cascade(tier, candidates, reasons)
        escalation = step.outage_escalation(tier) if outage_escalation else None
    routed = RoutedRequest(
        request=request,
        decision=decision.model_copy(update={"tier": tier, "reasons": reasons}),
        candidates=list(candidates),
        cascade=cascade,
        escalation=escalation,
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
        self.needs = needed(self.request)

    # ------------------------------------------------------------------ steps

    def affordable(self, tier: Tier, reasons: list[str]) -> tuple[Tier, list[str]]:
        """The decided tier's approved models; with a budget, the nearest tier that fits it."""
        listed = self.catalog.candidates(tier)
        if not listed:
            raise InputError(f"tier {tier} has no models in the catalog", ErrorType.NO_CANDIDATE)
        tier, names = self._capable(tier, listed, reasons)
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

    def pinned(self, name: str, decided: Tier, reasons: list[str]) -> tuple[Tier, list[str]]:
        """The pinned model alone, on the decided tier if it lists the model, else on the
        cheapest allowed tier that does; refused when unknown, unapproved or over budget."""
        if name not in self.catalog.models:
            raise InputError(f"unknown model {name!r}: not in the catalog", ErrorType.UNKNOWN_MODEL)
        lacking = self.catalog.models[name].capabilities.lacks(self.needs)
        if lacking:
            raise pinned_lacks(name, lacking)
        serving = [t for t in Tier if name in self.catalog.candidates(t)]
        if not serving:
            raise InputError(
                f"model {name!r} is in the catalog but in no tier", ErrorType.NO_CANDIDATE
            )
        allowed = [t for t in serving if self._allowed(t)]
        if not allowed:
            raise PolicyError(
                f"model {name!r} serves {', '.join(serving)}; the request's hints and tenant "
                f"allow {', '.join(self.options) or 'no tier'}",
                ErrorType.POLICY_DENIED,
            )
        tier = decided if decided in allowed else allowed[0]
        screened = screen([name], self.classes, self.providers, self.policy.sensitivity)
        reasons.extend(screened.reasons)
        reasons.append(f"model pinned: {name} ({tier})")
        if self.limit is not None:
            if not self._within([name], self.limit):
                raise PolicyError(
                    f"max_cost_usd {self.limit}: model {name} is estimated at "
                    f"{self._cheapest([name])}",
                    ErrorType.BUDGET_EXCEEDED,
                )
            reasons.append(f"max_cost_usd {self.limit}: estimate {self._cheapest([name])}")
        return tier, [name]

    def experiment(
        self, task: str, tier: Tier, reasons: list[str]
    ) -> tuple[Tier, list[str]] | None:
        """The arm's tier and models, when an experiment takes the request and its arm fits."""
        hit = assign(self.policy.experiments, self.request, task, tier)
        if hit is None:
            return None
        experiment, arm = hit
        arm_tier = arm.tier or tier
        models = self._fit(self._approved(arm.models, known_only=True))
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
        if self.request.params.stream:
            # the client reads the first answer as it is written: it cannot be taken back
            reasons.append("cascade skipped: streamed")
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
            if self._fit(names) != list(names):
                raise InputError(
                    f"internal: a candidate lacks {needs_label(self.needs)}, which the request "
                    "needs",
                    ErrorType.NO_CANDIDATE,
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
        return self._fit(self._approved(self.catalog.candidates(tier)))

    def _fit(self, names: Sequence[str]) -> list[str]:
        """The models that lack nothing the request needs (tools, images, json_schema)."""
        return fit(names, self.needs, self.catalog.models).kept

    def _capable(
        self, tier: Tier, names: Sequence[str], reasons: list[str]
    ) -> tuple[Tier, list[str]]:
        """The decided tier's models that can serve the request; when it has none, the
        nearest allowed tier that has some (economy for the batch lane, then above, then
        below); none anywhere is `no_candidate`."""
        if not self.needs:
            return tier, list(names)
        label = needs_label(self.needs)
        fitted = fit(names, self.needs, self.catalog.models)
        if fitted.kept:
            if fitted.dropped:
                reasons.append(f"needs {label}: dropped {', '.join(fitted.dropped)}")
            return tier, fitted.kept
        tried = {str(tier): fitted.dropped}
        same = [t for t in self.options if t.rank == tier.rank and t is not tier]  # batch lane
        above = [t for t in self.options if t.rank > tier.rank]
        below = [t for t in reversed(self.options) if t.rank < tier.rank]
        for other in [*same, *above, *below]:
            other_fit = fit(self.catalog.candidates(other), self.needs, self.catalog.models)
            if other_fit.kept:
                reasons.append(f"needs {label}: no {tier} model has it, {other} serves")
                return other, other_fit.kept
            tried[str(other)] = other_fit.dropped
        raise no_capable_model(self.needs, tried)

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
