"""`ResponseCache`: a tier worker looks a request up before serving it, and keeps the answer after.

A lookup walks the request's own candidates, the ones the router allowed it (a pinned
model, the tenant's tiers, the sensitivity rules, `max_cost_usd`, an experiment's arm),
cheapest first, and asks for the answer each of them gave to the same request
(`cache_key`). A cascade's escalation candidates come after its cheap ones, and a
cheap one's answer must pass the cascade's check first, as it would have served. So a
hit is always an answer of a model the request could have been served by, and an
answer is never served across tenants: the tenant is part of the key.

A hit is answered with no provider call (`served_from_cache`): the response says
`cached`, bills nothing, and its one cost record carries what the answer cost when it
was first served as `saved_usd`. A miss is served as always; when the request is
cacheable and the answer is worth keeping (a success that was not cut by a content
filter), `answer_to_keep` says what to remember, and the worker publishes it with the
answer and keeps it once that answer is published. Tool calls are not kept.

An answer is served for the policy's `ttl_s` after it was first given, and never past
the `expires_at` it was written with (a shorter TTL in a reloaded policy applies to the
answers already kept, too).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tierline.processors.routing.policy import CacheRules
from tierline.processors.serving.answer_check import Check, check_answer
from tierline.processors.serving.cache_key import cache_key, cacheable
from tierline.processors.serving.cache_store import AnswerStore, Clock
from tierline.processors.serving.walk import ServeOutcome
from tierline.schemas import CachedAnswer, CostRecord, RoutedRequest, RouteResponse, Tier, Usage

#: the rules in force, asked at every use (a reloading policy's `[cache]`)
CacheRulesSource = Callable[[], CacheRules]
#: how an answer must have ended to be kept: whole, or cut at the request's own max_tokens
KEPT_FINISH_REASONS = frozenset({"stop", "length"})


@dataclass(frozen=True, slots=True)
class Hit:
    """A kept answer the request may be served, and the tier its model serves it on."""

    answer: CachedAnswer
    tier: Tier


class ResponseCache:
    """The answers one worker keeps (`AnswerStore`), under the policy's `[cache]` rules,
    read anew at every use (`rules`: a reloading policy's)."""

    def __init__(
        self,
        rules: CacheRulesSource,
        *,
        clock: Clock = time.time,
        check: Check = check_answer,
    ) -> None:
        self._rules = rules
        first = rules()
        self.store = AnswerStore(first.max_entries, first.max_bytes, clock=clock)
        self.clock = clock
        self._check = check
        self.hits = 0
        self.misses = 0

    def rules(self) -> CacheRules:
        """The rules in force; the store takes their bounds when they changed."""
        rules = self._rules()
        if (rules.max_entries, rules.max_bytes) != (self.store.max_entries, self.store.max_bytes):
            self.store.resize(rules.max_entries, rules.max_bytes)
        return rules

    def lookup(self, routed: RoutedRequest) -> Hit | None:
        """The answer to serve `routed` with, or None (not cacheable, or nothing kept)."""
        rules = self.rules()
        request = routed.request
        if not cacheable(request, rules):
            return None
        steps = [(routed.decision.tier, routed.candidates, routed.cascade is not None)]
        if routed.cascade is not None:
            steps.append((routed.cascade.tier, routed.cascade.candidates, False))
        for tier, models, checked in steps:
            for model in models:
                answer = self.store.get(cache_key(request, model))
                if answer is None or not self._servable(answer, routed, model, rules):
                    continue
                hit = Hit(answer, tier)
                if checked and not self._passes(routed, hit):
                    continue
                self.hits += 1
                return hit
        self.misses += 1
        return None

    def answer_to_keep(self, routed: RoutedRequest, outcome: ServeOutcome) -> CachedAnswer | None:
        """What to remember of a request just served, or None (not cacheable, or an answer
        not to keep: an error, a content filter's cut, a tool call, a hit)."""
        rules = self.rules()
        request, response = routed.request, outcome.response
        if not cacheable(request, rules) or outcome.failed or response.cached:
            return None
        if response.model is None or response.provider is None or response.content is None:
            return None
        if response.finish_reason not in KEPT_FINISH_REASONS:
            return None
        if getattr(response, "tool_calls", None):
            return None  # a tool call is a step of the caller's, not an answer to replay
        now = datetime.fromtimestamp(self.clock(), UTC)
        return CachedAnswer(
            key=cache_key(request, response.model),
            tenant=request.tenant,
            model=response.model,
            provider=response.provider,
            content=response.content,
            finish_reason=response.finish_reason,
            usage=response.usage,
            cost_usd=response.cost_usd,
            created_at=now,
            expires_at=now + timedelta(seconds=rules.ttl_s),
        )

    def keep(self, answer: CachedAnswer, size: int) -> bool:
        """Keep an answer (this worker's, once published; or another's, read from the
        topic) of `size` bytes; False when it is expired, or too large to keep."""
        rules = self.rules()
        if not rules.enabled or self._age_s(answer) >= rules.ttl_s:
            return False
        return self.store.put(answer, size)

    def forget(self, key: str) -> None:
        self.store.drop(key)

    def _servable(
        self, answer: CachedAnswer, routed: RoutedRequest, model: str, rules: CacheRules
    ) -> bool:
        # the key holds tenant and model already: this is a second lock on the same door
        mine = answer.tenant == routed.request.tenant and answer.model == model
        return mine and self._age_s(answer) < rules.ttl_s

    def _passes(self, routed: RoutedRequest, hit: Hit) -> bool:
        try:
            return self._check(routed.request, served_from_cache(routed, hit).response) is None
        except Exception:  # noqa: BLE001 - a malformed client schema: not a usable hit
            return False

    def _age_s(self, answer: CachedAnswer) -> float:
        return self.clock() - answer.created_at.timestamp()


def served_from_cache(routed: RoutedRequest, hit: Hit, latency_ms: float = 0.0) -> ServeOutcome:
    """The outcome of a hit: the kept answer, no provider call, nothing billed.

    Its one cost record (`CostRecord.cache_id`, so a redelivery collapses onto it and
    it never replaces an attempt's bill) has no tokens, `cost_usd` 0 and `saved_usd`
    what the answer cost when it was first served.
    """
    request, answer = routed.request, hit.answer
    decision = routed.decision
    reason = (
        f"cache hit: the answer {answer.model} gave at "
        f"{answer.created_at:%Y-%m-%dT%H:%M:%SZ}, saved ${format(answer.cost_usd, 'f')}"
    )
    decision = decision.model_copy(
        update={"tier": hit.tier, "reasons": [*decision.reasons, reason]}
    )
    now = datetime.now(UTC)
    response = RouteResponse(
        id=request.id,
        tenant=request.tenant,
        status="ok",
        content=answer.content,
        finish_reason=answer.finish_reason,
        model=answer.model,
        provider=answer.provider,
        tier=hit.tier,
        usage=Usage(),
        cost_usd=Decimal(0),
        latency_ms=latency_ms,
        attempts=0,
        decision=decision,
        created_at=now,
        cached=True,
    )
    record = CostRecord(
        record_id=CostRecord.cache_id(request.id),
        request_id=request.id,
        attempt=1,
        tenant=request.tenant,
        feature=request.metadata.feature or "",
        user=request.metadata.user or "",
        task=decision.task,
        tier=hit.tier,
        model=answer.model,
        provider=answer.provider,
        status="ok",
        cost_usd=Decimal(0),
        saved_usd=answer.cost_usd,
        latency_ms=latency_ms,
        reasons=decision.reasons,
        created_at=now,
    )
    return ServeOutcome(response, [record], [])
