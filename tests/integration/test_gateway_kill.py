"""The gateway killed mid-run: what it had queued on Kafka is still answered and billed once.

The pipeline (router, workers, sink) runs in this process; the gateway runs as a process of
its own (`tierline run --role gateway`), as deployed, so it can be SIGKILLed. 1,000 calls
with distinct `Idempotency-Key`s go to it, at most `CONCURRENCY` at a time; once
`KILL_AFTER` have been answered it is killed while others are in flight. Then:

* every call answered 200 was produced to `tierline.requests`, and is answered on
  `tierline.responses` and billed in ClickHouse exactly once;
* every request produced before the kill (read back from `tierline.requests`) is answered
  on Kafka and billed exactly once, though its HTTP caller got a connection error;
* a request never produced is billed nothing; no caller got anything but a 200 or a
  connection error.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from clickhouse_connect.driver.client import Client

from tests.integration.support import (
    answered_once,
    billed_once,
    gateway_url,
    make_settings,
    role_env,
    start_role,
    stop_roles,
    wait_until,
)
from tierline.processors.simulator import SimulatorProfile, spawn_simulator
from tierline.processors.simulator.launch import SimulatorProcess
from tierline.streams.runtime import start_pipeline
from tierline.streams.tail import read_topic

KEY = "sk-acme-kill-test-0123456789"
CALLS = 1000
CONCURRENCY = 100
KILL_AFTER = 150


@pytest.fixture
def slow_simulator() -> Iterator[SimulatorProcess]:
    """The providers, in a process of their own, answering in 100 ms: calls stay in flight."""
    with spawn_simulator(SimulatorProfile(seed=13, latency_ms=100, output_tokens=(8, 32))) as sim:
        yield sim


async def test_killing_the_gateway_mid_run_loses_and_double_bills_nothing(
    kafka_bootstrap: str,
    topic_prefix: str,
    chdb_url: str,
    clickhouse: Client,
    slow_simulator: SimulatorProcess,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, slow_simulator.url, tmp_path)
    pipeline = await start_pipeline(settings, roles=("router", "workers", "sink"))
    log = tmp_path / "gateway.log"
    env = role_env(
        kafka_bootstrap,
        topic_prefix,
        tmp_path / "gateway",
        slow_simulator.url,
        gateway_http_host="127.0.0.1",
        gateway_http_port="0",
        gateway_keys=orjson.dumps(
            {"sha256:" + hashlib.sha256(KEY.encode()).hexdigest(): "acme"}
        ).decode(),
    )
    gateway = start_role("gateway", env, log)
    try:
        url = f"{await gateway_url(gateway, log)}/chat/completions"
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60.0)) as http:

            async def call(rid: str) -> httpx.Response:
                return await http.post(
                    url,
                    json={
                        "model": "tierline/auto",
                        "messages": [{"role": "user", "content": f"Say hello to {rid}."}],
                    },
                    headers={"Authorization": f"Bearer {KEY}", "Idempotency-Key": rid},
                )

            # the router and workers hold their partitions before the run starts
            warm = await call(f"{topic_prefix}warm")
            assert warm.status_code == 200, warm.text

            ids = [f"{topic_prefix}kill-{i}" for i in range(CALLS)]
            answered: list[str] = []
            failed: Counter[str] = Counter()
            enough = asyncio.Event()

            async def one(rid: str) -> None:
                try:
                    reply = await call(rid)
                except httpx.TransportError as exc:  # the gateway is gone: correct
                    failed[type(exc).__name__] += 1
                    return
                assert reply.status_code == 200, (reply.status_code, reply.text)
                assert reply.json()["id"] == rid
                answered.append(rid)
                if len(answered) >= KILL_AFTER:
                    enough.set()

            calls = asyncio.gather(*(one(rid) for rid in ids))
            await asyncio.wait_for(enough.wait(), timeout=60)
            gateway.send_signal(signal.SIGKILL)
            answered_at_kill = len(answered)
            gateway.wait(timeout=10)
            await asyncio.wait_for(calls, timeout=90)

        # what the gateway had queued on Kafka before it died
        requests = [
            orjson.loads(r.value)["id"]
            for r in await read_topic(kafka_bootstrap, f"{topic_prefix}requests", "read_committed")
        ]
        produced = {rid for rid in requests if rid.startswith(f"{topic_prefix}kill-")}
        in_flight = produced - set(answered)
        never = set(ids) - produced
        prefix = topic_prefix.encode()

        async def responses() -> list[Any]:
            records = await read_topic(
                kafka_bootstrap, f"{topic_prefix}responses", "read_committed"
            )
            return [r for r in records if r.key and r.key.startswith(b"%skill-" % prefix)]

        async def all_answered() -> bool:
            return len(await responses()) >= len(produced)

        assert await wait_until(all_answered, timeout_s=60, every_s=0.5)
        await asyncio.sleep(2)  # a late duplicate, if any, shows up here
        print(
            f"HTTP: {len(answered)} answered ({answered_at_kill} when killed), "
            f"{sum(failed.values())} connection errors {dict(failed)}; Kafka: "
            f"{len(produced)} produced ({len(in_flight)} in flight at the kill), "
            f"{len(never)} never produced; took {time.monotonic() - started:.1f}s"
        )
        assert len(answered) + sum(failed.values()) == CALLS
        assert set(answered) <= produced, "answered over HTTP, yet never on Kafka"
        assert in_flight, "the kill caught no request in flight: nothing was tested"
        assert never, "every request was produced before the kill: nothing was tested"

        got = answered_once(await responses(), sorted(produced))
        await billed_once(clickhouse, f"{topic_prefix}kill-", got)
        billed = {
            str(row[0])
            for row in clickhouse.query(
                "SELECT DISTINCT request_id FROM costs FINAL "
                f"WHERE request_id LIKE '{topic_prefix}kill-%'"
            ).result_rows
        }
        assert billed == produced and not billed & never, "a request never produced cost"
        print(f"billed once each: {len(billed)}; answered on Kafka once each: {len(got)}")
    finally:
        stop_roles(gateway)
        await asyncio.wait_for(pipeline.stop(), timeout=60)
