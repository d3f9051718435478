"""A tier worker killed mid-flight and restarted: one successful response per id, billed once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from tests.integration.support import (
    collect,
    make_settings,
    produce,
    request_body,
    wait_until,
)
from tierline.processors.simulator import RunningSimulator, SimulatorProfile, start_simulator
from tierline.schemas import RouteResponse
from tierline.streams.runtime import start_pipeline
from tierline.streams.tail import tail_consumer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def slow_simulator() -> AsyncIterator[RunningSimulator]:
    sim = await start_simulator(SimulatorProfile(seed=5, latency_ms=250, latency_jitter=0.5))
    yield sim
    await sim.stop()


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tierline.streams.cli",
                "run",
                "--role",
                "workers",
                "--status-every",
                "1",
                "--log-level",
                "info",
            ],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


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
    env = {
        **os.environ,
        "TIERLINE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "TIERLINE_KAFKA_TOPIC_PREFIX": topic_prefix,
        "TIERLINE_KAFKA_PARTITIONS": "3",
        "TIERLINE_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "TIERLINE_SIMULATOR_URL": slow_simulator.url,
        "TIERLINE_STATE_DIR": str(tmp_path / "worker"),
        "TIERLINE_WORKER_MAX_IN_FLIGHT": "40",
        "TIERLINE_WORKER_COMMIT_INTERVAL_S": "0.2",
    }
    log = tmp_path / "worker.log"
    worker = start_worker(env, log)
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
        restarted = start_worker(env, log)
        after = await collect(responses, n - len(before), timeout_s=120, settle_s=3)
        records = before + after

        got = [RouteResponse.model_validate(orjson.loads(r.value)) for r in records]
        ok_per_id = Counter(r.id for r in got if r.status == "ok")
        assert set(ok_per_id) == set(ids), f"missing {len(set(ids) - set(ok_per_id))}"
        assert max(ok_per_id.values()) == 1, [i for i, c in ok_per_id.items() if c > 1][:5]
        assert len(got) == n  # no error responses either
        total = sum((r.cost_usd for r in got), Decimal(0))

        where = f"request_id LIKE '{topic_prefix}crash-%'"

        async def billed() -> bool:
            rows = clickhouse.query(f"SELECT count() FROM costs FINAL WHERE {where}").result_rows
            return int(rows[0][0]) >= n

        assert await wait_until(billed, timeout_s=60)
        count, distinct, spent = clickhouse.query(
            f"SELECT count(), uniqExact(request_id), sum(cost_usd) FROM costs FINAL WHERE {where}"
        ).result_rows[0]
        assert (count, distinct) == (n, n)  # one bill per request
        assert Decimal(spent) == total
        await responses.stop()
    finally:
        for proc in (worker, restarted):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
        await asyncio.wait_for(pipeline.stop(), timeout=60)
