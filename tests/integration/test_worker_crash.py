"""A tier worker killed mid-flight and restarted: one successful response per id, billed once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from tests.integration.support import (
    answered_once,
    billed_once,
    collect,
    make_settings,
    produce,
    request_body,
    role_env,
    start_role,
    wait_until,
)
from tierline.processors.simulator import RunningSimulator, SimulatorProfile, start_simulator
from tierline.processors.store.spend import Unconfirmed, query_unconfirmed
from tierline.streams.runtime import start_pipeline
from tierline.streams.tail import tail_consumer


@pytest.fixture
async def slow_simulator() -> AsyncIterator[RunningSimulator]:
    sim = await start_simulator(SimulatorProfile(seed=5, latency_ms=250, latency_jitter=0.5))
    yield sim
    await sim.stop()


async def test_killed_worker_restarts_without_losing_or_doubling(
    kafka_bootstrap: str,
    topic_prefix: str,
    chdb_url: str,
    clickhouse: Client,
    slow_simulator: RunningSimulator,
    tmp_path: Path,
) -> None:
    settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, slow_simulator.url, tmp_path)
    pipeline = await start_pipeline(settings, roles=("router", "sink"))
    env = role_env(
        kafka_bootstrap,
        topic_prefix,
        tmp_path / "worker",
        slow_simulator.url,
        worker_max_in_flight="40",
        worker_commit_interval_s="0.2",
    )
    log = tmp_path / "worker.log"
    worker = start_role("workers", env, log)
    restarted: subprocess.Popen[bytes] | None = None
    try:
        responses = await tail_consumer(kafka_bootstrap, pipeline.topics.responses)
        n = 400
        ids = [f"{topic_prefix}crash-{i}" for i in range(n)]
        await produce(
            kafka_bootstrap,
            pipeline.topics.requests,
            [
                request_body(rid, f"Classify ticket {i}: 'refund not received'")
                for i, rid in enumerate(ids)
            ],
        )
        before = await collect(responses, 100, timeout_s=90)
        assert len(before) >= 100, log.read_text()[-3000:]
        worker.send_signal(signal.SIGKILL)  # mid-flight: up to 40 calls are in the air
        worker.wait()
        restarted = start_role("workers", env, log)
        after = await collect(responses, n - len(before), timeout_s=120, settle_s=3)
        records = before + after

        got = answered_once(records, ids)
        await billed_once(clickhouse, f"{topic_prefix}crash-", got)
        # the calls the kill cut off: made (their `started` record is durable), never settled
        cut_off = Unconfirmed(0, Decimal(0))

        async def cut_off_seen() -> bool:
            nonlocal cut_off
            mine = f"request_id LIKE '{topic_prefix}crash-%'"
            cut_off = query_unconfirmed(clickhouse, grace_s=0, where=mine)
            return cut_off.calls > 0

        assert await wait_until(cut_off_seen, 30), "no call was cut off by the kill"
        assert cut_off.calls <= 40  # at most one call per request in flight at the kill
        assert cut_off.estimated_usd > 0
        await responses.stop()
    finally:
        for proc in (worker, restarted):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
        await asyncio.wait_for(pipeline.stop(), timeout=60)
