"""The router SIGKILLed mid-stream and restarted: every request answered once, billed once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

import orjson
from clickhouse_connect.driver.client import Client

from tests.integration.support import collect, make_settings, produce, request_body, wait_until
from tierline.processors.simulator import RunningSimulator
from tierline.schemas import RouteResponse
from tierline.streams.runtime import start_pipeline
from tierline.streams.tail import tail_consumer

REPO = Path(__file__).resolve().parents[2]


def start_router(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tierline.streams.cli", "run", "--role", "router"]
            + ["--status-every", "1", "--log-level", "info"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_killed_router_restarts_without_losing_or_doubling(
    kafka_bootstrap: str,
    topic_prefix: str,
    chdb_url: str,
    clickhouse: Client,
    simulator: RunningSimulator,
    tmp_path: Path,
) -> None:
    settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, simulator.url, tmp_path)
    pipeline = await start_pipeline(settings, roles=("workers", "sink"))
    env = {
        **os.environ,
        "TIERLINE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "TIERLINE_KAFKA_TOPIC_PREFIX": topic_prefix,
        "TIERLINE_KAFKA_PARTITIONS": "3",
        "TIERLINE_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "TIERLINE_STATE_DIR": str(tmp_path / "router"),
    }
    log = tmp_path / "router.log"
    router = start_router(env, log)
    restarted: subprocess.Popen[bytes] | None = None
    try:
        responses = await tail_consumer(kafka_bootstrap, pipeline.topics.responses)
        n = 300
        ids = [f"{topic_prefix}rk-{i}" for i in range(n)]
        bodies = [
            request_body(rid, f"Translate 'hello {i}' to French") for i, rid in enumerate(ids)
        ]

        async def trickle() -> None:  # requests keep arriving while the router dies
            for start in range(0, n, 10):
                await produce(kafka_bootstrap, pipeline.topics.requests, bodies[start : start + 10])
                await asyncio.sleep(0.05)

        sending = asyncio.create_task(trickle())
        before = await collect(responses, 60, timeout_s=90)
        assert len(before) >= 60, log.read_text()[-3000:]
        router.send_signal(signal.SIGKILL)  # offsets since its last commit are routed again
        router.wait()
        await sending
        restarted = start_router(env, log)
        after = await collect(responses, n - len(before), timeout_s=120, settle_s=3)
        got = [RouteResponse.model_validate(orjson.loads(r.value)) for r in before + after]

        ok_per_id = Counter(r.id for r in got if r.status == "ok")
        assert set(ok_per_id) == set(ids), f"lost {len(set(ids) - set(ok_per_id))}"
        assert max(ok_per_id.values()) == 1  # answered once
        assert len(got) == n  # and nothing else: no error answers
        where = f"request_id LIKE '{topic_prefix}rk-%'"

        async def billed() -> bool:
            rows = clickhouse.query(f"SELECT count() FROM costs FINAL WHERE {where}").result_rows
            return int(rows[0][0]) >= n

        assert await wait_until(billed, timeout_s=60)
        count, distinct, spent = clickhouse.query(
            f"SELECT count(), uniqExact(request_id), sum(cost_usd) FROM costs FINAL WHERE {where}"
        ).result_rows[0]
        assert (count, distinct) == (n, n)  # billed once
        assert Decimal(spent) == sum((r.cost_usd for r in got), Decimal(0))
        await responses.stop()
    finally:
        for proc in (router, restarted):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
        await asyncio.wait_for(pipeline.stop(), timeout=60)
