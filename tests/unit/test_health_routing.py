"""The router with a health board: open and slow candidates skipped (and said so), a tier
whose candidates are all unhealthy kept whole for the workers to hold, the outage escalation
attached within the hints."""

from __future__ import annotations

import orjson

from tierline.processors.health.board import HealthBoard, HealthPolicy
from tierline.processors.health.breaker import BreakerPolicy
from tierline.processors.pricing.catalog import load_catalog
from tierline.processors.routing.classifiers.rules import RulesClassifier
from tierline.processors.routing.tier_rules import TierRules
from tierline.schemas import RoutedRequest, Tier
from tierline.streams.config import Settings
from tierline.streams.router import RequestRouter
from tierline.streams.topic_directory import TopicDirectory
from tierline.streams.topics import Topics

CATALOG = load_catalog()


def router(board: HealthBoard) -> RequestRouter:
    topics = Topics("t.")
    return RequestRouter(
        Settings(),
        topics,
        RulesClassifier(),
        TierRules(),
        CATALOG,
        TopicDirectory.fixed(topics.all()),
        health=board,
    )


async def route(board: HealthBoard, **hints: object) -> RoutedRequest:
    raw = orjson.dumps(
        {
            "id": "r1",
            "tenant": "acme",
            "messages": [{"role": "user", "content": "Translate 'hello' to French."}],
            "hints": hints,
        }
    )
    send, _features = await router(board).decide(raw, ("t.requests", 0, 1))
    return RoutedRequest.model_validate_json(send.value)


def open_circuit(board: HealthBoard, name: str) -> None:
    for _ in range(board.policy.breaker.failures_to_open):
        board.observe(CATALOG.model(name), "connection", why="refused")


async def test_an_open_candidate_is_skipped_with_its_reason() -> None:
    board = HealthBoard(HealthPolicy(breaker=BreakerPolicy(failures_to_open=2)))
    cheapest, *rest = CATALOG.candidates(Tier.ECONOMY)
    open_circuit(board, cheapest)
    routed = await route(board, min_tier="economy", max_tier="economy")
    assert routed.candidates == rest
    reason = next(r for r in routed.decision.reasons if r.startswith(f"skipped {cheapest}"))
    assert "circuit open since" in reason and "refused" in reason


async def test_every_candidate_unhealthy_keeps_them_all_for_the_workers_to_hold() -> None:
    board = HealthBoard(HealthPolicy(breaker=BreakerPolicy(failures_to_open=1)))
    for name in CATALOG.candidates(Tier.ECONOMY):
        open_circuit(board, name)
    routed = await route(board, min_tier="economy", max_tier="economy")
    assert routed.candidates == list(CATALOG.candidates(Tier.ECONOMY))
    assert any("the workers hold the request" in r for r in routed.decision.reasons)


async def test_a_slow_candidate_is_skipped_and_interactive_tightens_the_limit() -> None:
    policy = HealthPolicy(
        min_calls_for_p95=3, p95_limit_ms={Tier.ECONOMY: 5000.0}, interactive_p95_limit_ms=1000.0
    )
    board = HealthBoard(policy)
    cheapest = CATALOG.candidates(Tier.ECONOMY)[0]
    for _ in range(3):
        board.observe(CATALOG.model(cheapest), "ok", 2000.0)
    relaxed = await route(board, min_tier="economy", max_tier="economy")
    assert cheapest in relaxed.candidates  # 2 s is under the tier's 5 s
    # ... but the equally priced gpt-4.1-nano, with no slow record, now goes first
    second = CATALOG.candidates(Tier.ECONOMY)[1]
    assert CATALOG.model(second).price.blended() == CATALOG.model(cheapest).price.blended()
    assert relaxed.candidates[:2] == [second, cheapest]
    hurried = await route(board, min_tier="economy", max_tier="economy", latency="interactive")
    assert cheapest not in hurried.candidates
    assert any("p95 2000 ms over the 1000 ms limit" in r for r in hurried.decision.reasons)


async def test_the_outage_escalation_is_the_next_tier_up_within_the_hints() -> None:
    board = HealthBoard()
    routed = await route(board, min_tier="economy", max_tier="standard")
    assert routed.decision.tier == Tier.ECONOMY
    assert routed.escalation is not None and routed.escalation.tier == Tier.STANDARD
    assert routed.escalation.candidates == list(CATALOG.candidates(Tier.STANDARD))
    capped = await route(board, min_tier="economy", max_tier="economy")
    assert capped.escalation is None  # max_tier holds during an outage too
