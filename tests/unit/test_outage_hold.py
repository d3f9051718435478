"""The walk with a health board, against the simulator over real HTTP: circuits open on
an outage, requests are held (not failed) and answered once the provider is back, a
deadline ends a hold as `unavailable` or an escalation, a 429 shifts traffic to the next
candidate, and what broke the connection is named."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tierline.processors.health.board import HealthBoard, HealthPolicy
from tierline.processors.health.breaker import BreakerPolicy
from tierline.processors.pricing.catalog import Catalog
from tierline.processors.providers.keys import KeyRing
from tierline.processors.serving.backoff import Backoff
from tierline.processors.serving.walk import Dispatcher, RetryPlan, ServeOutcome
from tierline.processors.simulator import (
    ModelOverride,
    RunningSimulator,
    SimulatorProfile,
    start_simulator,
)
from tierline.schemas import (
    ErrorType,
    Escalation,
    RoutedRequest,
    RouteRequest,
    RoutingDecision,
    Tier,
)

CATALOG = {
    "models": {
        "small": {"provider": "openai", "price": {"input": "0.10", "output": "0.40"}},
        "medium": {"provider": "openai", "price": {"input": "0.40", "output": "1.60"}},
        "big": {"provider": "anthropic", "price": {"input": "2", "output": "8"}},
    },
    "tiers": {"economy": ["small", "medium"], "standard": ["medium"], "premium": ["big"]},
}
RETRY = RetryPlan(max_retries=2, call_timeout_s=2.0, backoff=Backoff(base_s=0.01, cap_s=0.02))
BREAKER = BreakerPolicy(failures_to_open=3, cooldown_s=0.3, max_cooldown_s=0.6, probes=1)


def routed(
    rid: str,
    candidates: list[str],
    *,
    deadline_s: float = 30.0,
    escalation: Escalation | None = None,
) -> RoutedRequest:
    request = RouteRequest.model_validate(
        {
            "id": rid,
            "tenant": "acme",
            "messages": [{"role": "user", "content": "Summarise the meeting notes."}],
            "hints": {"deadline_s": deadline_s},
        }
    )
    return RoutedRequest(
        request=request,
        decision=RoutingDecision(task="qa", tier=Tier.ECONOMY, score=0.1, reasons=["test"]),
        candidates=candidates,
        escalation=escalation,
        routed_at=datetime.now(UTC),
    )


async def _eventually(check: Callable[[], bool], timeout_s: float) -> bool:
    """Whether `check` holds at some poll within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    running = await start_simulator(
        SimulatorProfile(seed=3, models={"medium": ModelOverride(rate_limit_rate=0.0)})
    )
    yield running
    await running.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


def dispatcher(url: str, client: httpx.AsyncClient, board: HealthBoard) -> Dispatcher:
    catalog = Catalog.from_config(CATALOG).with_simulator(url)
    return Dispatcher(catalog, client, KeyRing({}, fallback="sim-key"), RETRY, seed=1, health=board)


async def test_an_outage_holds_requests_and_answers_them_when_the_provider_returns(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    board = HealthBoard(HealthPolicy(breaker=BREAKER))
    serve = dispatcher(sim.url, client, board)
    await sim.down(mode="reset")
    tasks = [
        asyncio.create_task(serve.serve(routed(f"o{i}", ["small", "medium"]))) for i in range(40)
    ]
    await asyncio.sleep(1.5)
    assert not any(t.done() for t in tasks), "requests failed instead of being held"
    # all 40 wait; at a given instant one of them may be out making the cool-down's probe
    assert await _eventually(lambda: board.held[Tier.ECONOMY] == 40, 5.0)
    during = (await _stats(sim))["during_outage"]
    # each model: a few failures open it, then one probe per cool-down (0.3 s, then 0.6 s)
    assert during <= 2 * (3 + 40 + 4), during
    await sim.up()
    outcomes = await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert [o.response.status for o in outcomes] == ["ok"] * 40
    assert {o.response.id for o in outcomes} == {f"o{i}" for i in range(40)}
    held = [o for o in outcomes if any(r.startswith("held ") for r in reasons(o))]
    assert held, "no answer says it was held"
    assert board.held[Tier.ECONOMY] == 0
    # each held request went to the first candidate whose circuit let it through: which of
    # the two models' probes closes its circuit first after the outage is a race of their
    # cool-down phases, so some may have gone to medium while small was still open
    assert {o.response.model for o in outcomes} <= {"small", "medium"}
    # but once the cheapest model's circuit is closed again, it serves the tier
    assert board.of(serve.catalog.model("small")).circuit.state == "closed"
    after = await serve.serve(routed("after", ["small", "medium"]))
    assert after.response.status == "ok" and after.response.model == "small"


async def test_the_half_open_probe_budget_bounds_calls_while_down(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    board = HealthBoard(HealthPolicy(breaker=BREAKER))
    serve = dispatcher(sim.url, client, board)
    await sim.down(mode="reset")
    first = asyncio.create_task(serve.serve(routed("p0", ["small"])))
    await asyncio.sleep(0.5)  # the circuit is open now
    before = (await _stats(sim))["during_outage"]
    more = [asyncio.create_task(serve.serve(routed(f"p{i}", ["small"]))) for i in range(1, 30)]
    await asyncio.sleep(2.0)
    after = (await _stats(sim))["during_outage"]
    # 29 more held requests over 2 s: probes only (cool-down 0.3 s doubling to 0.6 s)
    assert after - before <= 6, (before, after)
    await sim.up()
    outcomes = await asyncio.wait_for(asyncio.gather(first, *more), 10)
    assert all(o.response.status == "ok" for o in outcomes)


async def test_past_its_deadline_a_held_request_is_unavailable(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    board = HealthBoard(HealthPolicy(breaker=BREAKER))
    serve = dispatcher(sim.url, client, board)
    await sim.down(mode="reset")
    outcome = await asyncio.wait_for(serve.serve(routed("d1", ["small"], deadline_s=1.0)), 5)
    error = outcome.response.error
    assert error is not None and error.type == ErrorType.UNAVAILABLE
    assert "deadline" in error.message and outcome.response.latency_ms >= 900
    assert any("circuit open" in r for r in reasons(outcome))


async def test_past_its_deadline_a_request_escalates_when_the_router_allowed_it(
    client: httpx.AsyncClient,
) -> None:
    sim = await start_simulator(
        SimulatorProfile(seed=3, models={"small": ModelOverride(error_rate=1.0)})
    )
    try:
        board = HealthBoard(HealthPolicy(breaker=BREAKER))
        serve = dispatcher(sim.url, client, board)
        escalation = Escalation(tier=Tier.PREMIUM, candidates=["big"])
        outcome = await asyncio.wait_for(
            serve.serve(routed("e1", ["small"], deadline_s=1.0, escalation=escalation)), 5
        )
    finally:
        await sim.stop()
    response = outcome.response
    assert response.status == "ok" and response.model == "big" and response.tier == Tier.PREMIUM
    assert any("escalated to premium" in r for r in reasons(outcome))
    assert board.of(serve.catalog.model("small")).circuit.state == "open"


async def test_a_refused_connection_is_named_and_opens_the_circuit(
    client: httpx.AsyncClient,
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    board = HealthBoard(HealthPolicy(breaker=BREAKER))
    serve = dispatcher(url, client, board)
    outcome = await serve.serve(routed("c1", ["small"], deadline_s=0.2))
    error = outcome.response.error
    assert error is not None and error.type == ErrorType.UNAVAILABLE
    assert "refused" in error.message
    assert board.of(serve.catalog.model("small")).circuit.state in ("open", "half_open")
    no_board = Dispatcher(serve.catalog, client, KeyRing({}, fallback="k"), RETRY)
    plain = (await no_board.serve(routed("c2", ["small"]))).response.error
    assert plain is not None and plain.type == ErrorType.CONNECTION and plain.cause == "refused"


async def test_a_429_moves_the_request_to_the_next_candidate_and_cools_the_model(
    client: httpx.AsyncClient,
) -> None:
    sim = await start_simulator(
        SimulatorProfile(
            seed=3, models={"small": ModelOverride(rate_limit_rate=1.0)}, retry_after_s=5
        )
    )
    try:
        board = HealthBoard(HealthPolicy(breaker=BREAKER))
        serve = dispatcher(sim.url, client, board)
        first = (await serve.serve(routed("q1", ["small", "medium"]))).response
        assert first.status == "ok" and first.model == "medium" and first.attempts == 2
        second_outcome = await serve.serve(routed("q2", ["small", "medium"]))
        second = second_outcome.response
        assert second.model == "medium" and second.attempts == 1  # small is cooling: not called
        assert any("skipped small: rate limited" in r for r in reasons(second_outcome))
        assert board.of(serve.catalog.model("small")).circuit.state == "closed"
        assert (await _stats(sim))["by_model"]["small"] == 1
    finally:
        await sim.stop()


async def test_an_announced_rpm_limit_is_kept_before_the_provider_refuses(
    client: httpx.AsyncClient,
) -> None:
    sim = await start_simulator(
        SimulatorProfile(seed=3, models={"small": ModelOverride(rpm_limit=5)})
    )
    try:
        board = HealthBoard(HealthPolicy(breaker=BREAKER))
        serve = dispatcher(sim.url, client, board)
        outcomes = [await serve.serve(routed(f"l{i}", ["small", "medium"])) for i in range(12)]
        models = [o.response.model for o in outcomes]
        assert all(o.response.status == "ok" for o in outcomes)
        assert models.count("small") == 5 and models.count("medium") == 7
        stats = await _stats(sim)
        assert stats["by_outcome"].get("over_limit", 0) == 0, "the limit was provoked"
    finally:
        await sim.stop()


async def _stats(sim: RunningSimulator) -> dict[str, Any]:
    return sim.stats.to_dict()


def reasons(outcome: ServeOutcome) -> list[str]:
    decision = outcome.response.decision
    assert decision is not None
    return decision.reasons
