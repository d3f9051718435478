"""The router SIGKILLed mid-stream and restarted: every request answered once, billed once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

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
)
from tierline.processors.simulator import RunningSimulator
from tierline.streams.runtime import start_pipeline
from tierline.streams.tail import tail_consumer


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
    env = role_env(kafka_bootstrap, topic_prefix, tmp_path / "router")
    log = tmp_path / "router.log"
    router = start_role("router", env, log)
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
        restarted = start_role("router", env, log)
        after = await collect(responses, n - len(before), timeout_s=120, settle_s=3)
        got = answered_once(before + after, ids)
        await billed_once(clickhouse, f"{topic_prefix}rk-", got)
        await responses.stop()
    finally:
        for proc in (router, restarted):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
        await asyncio.wait_for(pipeline.stop(), timeout=60)
