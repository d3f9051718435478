"""The batch lane against the simulator's batch endpoints, for all three wire formats.

The dispatcher serves batch-tier requests through `BatchLane`; the provider is the
simulator, faked at the HTTP boundary. The journal here is an in-memory list of
records (the Kafka journal is tested on a real broker in
`tests/integration/test_batch_lane.py`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from tierline.processors.pricing.catalog import Catalog, load_catalog
from tierline.processors.pricing.cost import cost_of
from tierline.processors.providers.keys import KeyRing
from tierline.processors.serving.batch_lane import BatchLane, BatchPolicy, custom_id_for
from tierline.processors.serving.walk import Dispatcher, ServeOutcome
from tierline.processors.simulator import RunningSimulator, SimulatorProfile, start_simulator
from tierline.schemas import (
    ErrorType,
    OpenBatch,
    RoutedRequest,
    RouteRequest,
    RoutingDecision,
    Tier,
)

FAST = BatchPolicy(max_requests=100, max_wait_s=0.05, poll_s=0.05)


class ListJournal:
    """Open batches kept in a dict, fed to whichever lane reads it."""

    def __init__(self) -> None:
        self.open: dict[str, OpenBatch] = {}
        self.lane: BatchLane | None = None
        self.journaled = asyncio.Event()

    async def opened(self, batch: OpenBatch) -> None:
        self.open[batch.key] = batch
        self.journaled.set()

    async def closed(self, key: str) -> None:
        self.open.pop(key, None)

    async def catch_up(self) -> None:
        assert self.lane is not None
        for record in list(self.open.values()):
            self.lane.learned(record)


def catalog_for(model: str, sim_url: str) -> Catalog:
    """The bundled catalog on the simulator, with `model` alone on the batch tier."""
    bundled = load_catalog()
    tiers = {tier: list(bundled.candidates(tier)) for tier in Tier}
    tiers[Tier.BATCH] = [model]
    return Catalog(bundled.models, tiers).with_simulator(sim_url)


def routed(i: int, catalog: Catalog, text: str = "Label this ticket: parcel late") -> RoutedRequest:
    request = RouteRequest.model_validate(
        {
            "id": f"b-{i}",
            "tenant": "acme",
            "messages": [{"role": "user", "content": f"{text} #{i}"}],
            "params": {"max_tokens": 32},
            "hints": {"latency": "batch"},
        }
    )
    return RoutedRequest(
        request=request,
        decision=RoutingDecision(task="classification", tier=Tier.BATCH, score=0.1),
        candidates=list(catalog.candidates(Tier.BATCH)),
        routed_at=datetime.now(UTC),
    )


def lane_for(
    client: httpx.AsyncClient, catalog: Catalog, journal: ListJournal, policy: BatchPolicy = FAST
) -> BatchLane:
    lane = BatchLane(
        client,
        policy,
        journal,
        model_of=lambda name: catalog.models.get(name),
        key_of=lambda model: "sim-key",
    )
    journal.lane = lane
    return lane


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    running = await start_simulator(SimulatorProfile(seed=3, latency_ms=5, batch_delay_s=0.2))
    yield running
    await running.stop()


async def serve_all(
    catalog: Catalog, lane: BatchLane, client: httpx.AsyncClient, requests: list[RoutedRequest]
) -> list[ServeOutcome]:
    dispatcher = Dispatcher(catalog, client, KeyRing({}, fallback="sim-key"), batches=lane)
    stop = asyncio.Event()
    runner = asyncio.create_task(lane.run(stop))
    try:
        async with asyncio.timeout(30):
            return list(await asyncio.gather(*(dispatcher.serve(r) for r in requests)))
    finally:
        stop.set()
        await runner


@pytest.mark.parametrize(
    ("model", "route"),
    [("gpt-4.1-nano", "openai"), ("claude-haiku-4-5", "anthropic"),
     ("gemini-2.5-flash-lite", "gemini")],
)  # fmt: skip
async def test_batch_requests_are_answered_from_one_batch_at_the_batch_price(
    sim: RunningSimulator, model: str, route: str
) -> None:
    catalog = catalog_for(model, sim.url)
    requests = [routed(i, catalog) for i in range(5)]
    async with httpx.AsyncClient() as client:
        outcomes = await serve_all(
            catalog, lane_for(client, catalog, ListJournal()), client, requests
        )
    spec = catalog.model(model)
    for outcome in outcomes:
        response = outcome.response
        assert response.status == "ok", response.error
        assert response.model == model
        assert response.decision is not None
        assert any("batch API" in r for r in response.decision.reasons)
        (cost,) = outcome.costs
        assert cost.cost_usd == cost_of(response.usage, spec.price, batch=True)
        assert cost.cost_usd < cost_of(response.usage, spec.price)
    stats = sim.stats
    assert stats.batch_items == 5
    assert sum(stats.batches.values()) == 1
    assert stats.batch_items_resubmitted == 0


async def test_a_new_lane_waits_for_a_journaled_batch_instead_of_resubmitting(
    sim: RunningSimulator,
) -> None:
    catalog = catalog_for("gpt-4.1-nano", sim.url)
    requests = [routed(i, catalog) for i in range(4)]
    journal = ListJournal()
    async with httpx.AsyncClient() as client:
        first = lane_for(client, catalog, journal, BatchPolicy(max_wait_s=0.05, poll_s=5.0))
        dispatcher = Dispatcher(catalog, client, KeyRing({}, fallback="sim-key"), batches=first)
        stop = asyncio.Event()
        runner = asyncio.create_task(first.run(stop))
        serving = [asyncio.create_task(dispatcher.serve(r)) for r in requests]
        async with asyncio.timeout(10):  # submitted and journaled, its results not yet asked
            await journal.journaled.wait()
        for task in serving:  # the worker dies: nothing of the first lane survives
            task.cancel()
        stop.set()
        await asyncio.gather(*serving, runner, return_exceptions=True)

        second = lane_for(client, catalog, journal)
        await journal.catch_up()  # the new worker reads the journal before serving
        outcomes = await serve_all(catalog, second, client, requests)
    assert [o.response.status for o in outcomes] == ["ok"] * 4
    assert second.stats.resumed_items == 4 and second.stats.submitted_items == 0
    assert sim.stats.batch_items == 4 and sim.stats.batch_items_resubmitted == 0
    # the batch stays journaled until every answer is published, then is closed
    for r in requests[:3]:
        second.answered(r.request)
    await asyncio.sleep(0)
    assert journal.open
    second.answered(requests[3].request)
    await asyncio.sleep(0)
    assert not journal.open


async def test_an_expired_item_is_called_synchronously_once_at_full_price() -> None:
    sim = await start_simulator(SimulatorProfile(seed=3, batch_delay_s=0.1, batch_expire_rate=1.0))
    try:
        catalog = catalog_for("gpt-4.1-nano", sim.url)
        async with httpx.AsyncClient() as client:
            (outcome,) = await serve_all(
                catalog, lane_for(client, catalog, ListJournal()), client, [routed(0, catalog)]
            )
            spec = catalog.model("gpt-4.1-nano")
            response = outcome.response
            assert response.status == "ok" and response.model == "gpt-4.1-nano"
            assert response.decision is not None
            reasons = response.decision.reasons
            assert any("batch item expired" in r for r in reasons)
            assert any("called synchronously" in r for r in reasons)
            (cost,) = outcome.costs
            assert cost.cost_usd == cost_of(response.usage, spec.price)  # the full price

            lane = lane_for(
                client, catalog, ListJournal(), BatchPolicy(0, 0.05, 0.05, lost="error")
            )
            (failed,) = await serve_all(catalog, lane, client, [routed(1, catalog)])
        assert failed.response.status == "error"
        assert failed.response.error is not None
        assert failed.response.error.type == ErrorType.UNAVAILABLE
        assert "expired" in failed.response.error.message
        assert failed.costs == []
    finally:
        await sim.stop()


def test_item_ids_are_stable_per_request_and_model_and_fit_every_provider() -> None:
    catalog = load_catalog()
    nano, lite = catalog.model("gpt-4.1-nano"), catalog.model("gemini-2.5-flash-lite")
    request = routed(7, catalog).request
    again = request.model_copy()
    assert custom_id_for(nano, request) == custom_id_for(nano, again)
    assert custom_id_for(nano, request) != custom_id_for(lite, request)
    other_tenant = request.model_copy(update={"tenant": "globex"})
    replayed = request.model_copy(update={"replay": 1})
    ids = {custom_id_for(nano, r) for r in (request, other_tenant, replayed)}
    assert len(ids) == 3
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", i) for i in ids)
