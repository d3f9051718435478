"""The cascade: answer with the cheap tier, check the answer, escalate only when it fails.

For task classes where a cheap check tells a usable answer from a bad one
(`serving.answer_check`: JSON that parses and matches its schema, not empty,
not a refusal, not truncated), the router sends the request to the cheapest
allowed tier with `cascade` set to where it may escalate. `serving.serve`
hands such a request here: one `Dispatcher.serve` on the cheap candidates; if
the check passes, that is the answer. If not, a second `serve` on the
escalation candidates, under the escalation tier, with a reason saying why.

Both calls are billed: the response's `cost_usd`, `usage` and `attempts`
are the sums over both, and the cost records of both are published. The
second call numbers its attempts from 1 again, so its records are renumbered
after the first call's (attempt n of the second call becomes attempts(first)
+ n, and its `record_id` with it): every billed attempt keeps a unique
record id, and a redelivery still collapses onto the same rows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Protocol

from tierline.processors.serving.answer_check import Check, check_answer, escalation_helps
from tierline.processors.serving.walk import ServeOutcome
from tierline.schemas import CostRecord, RoutedRequest, Tier


class Serves(Protocol):
    """What a cascade needs of a dispatcher."""

    async def serve(self, routed: RoutedRequest) -> ServeOutcome: ...


async def serve_with_cascade(
    dispatcher: Serves,
    routed: RoutedRequest,
    escalate_to: Sequence[str],
    check: Check = check_answer,
    *,
    escalate_tier: Tier | None = None,
) -> ServeOutcome:
    """The cheap answer if it passes `check`, else the escalated one; both calls billed."""
    started = time.monotonic()
    first = await dispatcher.serve(routed)
    try:
        problem = check(routed.request, first.response)
    except Exception:  # noqa: BLE001 - a malformed client schema must not lose the answer
        problem = None
    if problem is None or not escalate_to or not escalation_helps(first.response):
        return first
    tier = escalate_tier or routed.decision.tier
    decision = routed.decision
    escalated = decision.model_copy(
        update={
            "tier": tier,
            "reasons": [
                *decision.reasons,
                f"cascade: {decision.tier} answer failed its check ({problem}): "
                f"escalated to {tier}",
            ],
        }
    )
    second = await dispatcher.serve(
        routed.model_copy(
            update={"decision": escalated, "candidates": list(escalate_to), "cascade": None}
        )
    )
    return merge(first, second, round((time.monotonic() - started) * 1000, 3))


def merge(first: ServeOutcome, second: ServeOutcome, latency_ms: float) -> ServeOutcome:
    """One outcome for two calls: the second's answer, both calls' bills and counts."""
    offset = max([first.response.attempts, *(c.attempt for c in first.costs)])
    costs = first.costs + [renumber(record, offset) for record in second.costs]
    response = second.response.model_copy(
        update={
            "usage": first.response.usage + second.response.usage,
            "cost_usd": sum((c.cost_usd for c in costs), Decimal(0)),
            "attempts": first.response.attempts + second.response.attempts,
            "latency_ms": latency_ms,
        }
    )
    return ServeOutcome(response, costs, first.attempts + second.attempts)


def renumber(record: CostRecord, offset: int) -> CostRecord:
    """The record as attempt `offset + attempt` of its request."""
    attempt = record.attempt + offset
    return record.model_copy(
        update={"attempt": attempt, "record_id": CostRecord.make_id(record.request_id, attempt)}
    )
