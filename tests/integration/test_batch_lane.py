"""The batch tier on the providers' batch APIs: 500 requests, a worker killed mid-batch.

Real Kafka, real role processes, the simulator's OpenAI batch endpoints. The
workers process is SIGKILLed while its batches are open at the provider; the
restarted one must find them in the journal and poll them, not submit again.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from clickhouse_connect.driver.client import Client

from tests.integration.support import (
    answered_once,
    billed_once,
    collect,
    log_tail,
    make_settings,
    produce,
    request_body,
    role_env,
    start_role,
    stop_roles,
    wait_until,
)
from tierline.processors.pricing.catalog import load_catalog
from tierline.processors.pricing.cost import quantize
from tierline.processors.simulator import RunningSimulator, SimulatorProfile, start_simulator
from tierline.schemas import Tier
from tierline.streams.runtime import start_pipeline
from tierline.streams.tail import tail_consumer

N = 500


@pytest.fixture
async def batch_simulator() -> AsyncIterator[RunningSimulator]:
    # a batch ends 6 s after it was created: long enough to kill a worker while it is open
    sim = await start_simulator(SimulatorProfile(seed=11, latency_ms=20, batch_delay_s=6.0))
    yield sim
    await sim.stop()


async def sim_stats(sim: RunningSimulator) -> dict[str, Any]:
    """The simulator's counters, as its `/_sim/stats` route gives them."""
    async with httpx.AsyncClient() as client:
        reply = await client.get(f"{sim.url}/_sim/stats")
    stats: dict[str, Any] = reply.json()
    return stats


async def test_five_hundred_batch_requests_survive_a_worker_kill_billed_at_half(
    kafka_bootstrap: str,
    topic_prefix: str,
    chdb_url: str,
    clickhouse: Client,
    batch_simulator: RunningSimulator,
    tmp_path: Path,
) -> None:
    settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, batch_simulator.url, tmp_path)
    pipeline = await start_pipeline(settings, roles=("router", "sink"))
    env = role_env(
        kafka_bootstrap,
        topic_prefix,
        tmp_path / "worker",
        batch_simulator.url,
        worker_tiers="batch",
        batch_max_requests="100",
        batch_max_wait_s="1",
        batch_poll_s="0.5",
    )
    log = tmp_path / "worker.log"
    worker = start_role("workers", env, log)
    restarted: subprocess.Popen[bytes] | None = None
    try:
        responses = await tail_consumer(kafka_bootstrap, pipeline.topics.responses)
        ids = [f"{topic_prefix}batch-{i}" for i in range(N)]
        hints = {"latency": "batch", "max_tier": "economy"}
        await produce(
            kafka_bootstrap,
            pipeline.topics.requests,
            [
                request_body(rid, f"Label ticket {i}: 'where is my parcel?'", hints=hints)
                for i, rid in enumerate(ids)
            ],
        )

        async def all_submitted() -> bool:
            stats = await sim_stats(batch_simulator)
            return int(stats["batch_items"]) >= N

        # every request is in an open batch (they end 6 s after creation): kill the worker
        assert await wait_until(all_submitted, 60), log_tail(log)
        early = await collect(responses, N, timeout_s=0.5)
        assert len(early) < N, "every batch ended before the kill: nothing was open"
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        restarted = start_role("workers", env, log)
        late = await collect(responses, N - len(early), timeout_s=120, settle_s=3)
        got = answered_once(early + late, ids)
        await billed_once(clickhouse, f"{topic_prefix}batch-", got)

        stats = await sim_stats(batch_simulator)
        print(
            f"batch lane: {N} sent, {len(early)} answered before the kill, {len(late)} after; "
            f"{sum(stats['batches'].values())} batches, {stats['batch_items']} items submitted, "
            f"{stats['batch_items_resubmitted']} resubmitted, {stats['requests']} model requests"
        )
        assert stats["batch_items"] == N, stats  # each request submitted once ...
        assert stats["batch_items_resubmitted"] == 0, stats  # ... and never again
        assert sum(stats["batches"].values()) >= N // 100
        # model requests are the batch items, each answered once: none was called directly
        assert stats["requests"] == N, stats

        # every answer came from gpt-4.1-nano's batch, at half its synchronous price
        nano = load_catalog().model("gpt-4.1-nano").price
        assert load_catalog().candidates(Tier.BATCH)[0] == "gpt-4.1-nano"
        for answer in got:
            assert answer.model == "gpt-4.1-nano" and answer.tier == Tier.BATCH
            assert answer.decision is not None
            assert any("batch API" in r for r in answer.decision.reasons), answer.decision
            usage = answer.usage
            assert usage.cache_write_tokens == 0
            cached = usage.cached_input_tokens
            plain = usage.input_tokens - cached
            assert nano.cached_input is not None
            synchronous = (
                plain * nano.input + cached * nano.cached_input + usage.output_tokens * nano.output
            )
            assert answer.cost_usd == quantize(synchronous * Decimal("0.5")), answer
            assert answer.cost_usd > 0

        # the journal closed every batch once all its answers were out
        async def journal_closed() -> bool:
            batches = await tail_consumer(kafka_bootstrap, pipeline.topics.batches, from_start=True)
            try:
                read = await collect(batches, 10_000, timeout_s=2)
            finally:
                await batches.stop()
            latest: dict[bytes, bytes | None] = {}
            for record in read:
                latest[record.key] = record.value
            opened = [orjson.loads(v) for v in latest.values() if v is not None]
            return not opened and len(latest) >= N // 100

        assert await wait_until(journal_closed, 30), "batches left open in the journal"
        await responses.stop()
    finally:
        stop_roles(worker, restarted)
        await asyncio.wait_for(pipeline.stop(), timeout=60)
