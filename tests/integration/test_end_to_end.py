"""1,000 requests through real Kafka and chDB: each answered once, billed once, exactly."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import orjson
from clickhouse_connect.driver.client import Client

from tests.integration.support import (
    collect,
    make_settings,
    produce,
    request_body,
    wait_until,
)
from tierline.processors.simulator import RunningSimulator
from tierline.processors.store.spend import query_spend
from tierline.schemas import RouteResponse
from tierline.streams.runtime import start_pipeline
from tierline.streams.tail import tail_consumer

PROMPTS = [
    "Translate 'good morning' into Spanish.",
    "Classify the sentiment of: 'the delivery was late again'.",
    "Write a Python function that merges overlapping intervals, with tests.",
    "Prove that the square root of 2 is irrational, step by step.",
    "Summarize: our Q3 revenue grew 12% while costs fell 3%.",
]


async def test_thousand_requests_get_thousand_responses_and_exact_bills(
    kafka_bootstrap: str,
    topic_prefix: str,
    chdb_url: str,
    clickhouse: Client,
    simulator: RunningSimulator,
    tmp_path: Path,
) -> None:
    settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, simulator.url, tmp_path)
    pipeline = await start_pipeline(settings)
    try:
        responses = await tail_consumer(kafka_bootstrap, pipeline.topics.responses)
        n = 1000
        ids = [f"{topic_prefix}e2e-{i}" for i in range(n)]
        tenants = ["acme", "globex", "initech"]
        bodies = [
            request_body(rid, PROMPTS[i % len(PROMPTS)], tenant=tenants[i % 3])
            for i, rid in enumerate(ids)
        ]
        await produce(kafka_bootstrap, pipeline.topics.requests, bodies)
        records = await collect(responses, n, timeout_s=180, settle_s=2)
        await responses.stop()

        got = [RouteResponse.model_validate(orjson.loads(r.value)) for r in records]
        assert sorted(r.id for r in got) == sorted(ids)  # each id once, none missing
        assert all(r.status == "ok" for r in got), [r.error for r in got if r.error][:3]
        assert {r.key.decode() for r in records} == set(ids)  # keyed by request id
        tiers = {str(r.tier) for r in got}
        assert len(tiers) >= 2, tiers  # the prompts are not all of one difficulty
        total = sum((r.cost_usd for r in got), Decimal(0))
        assert total > 0

        where = f"request_id LIKE '{topic_prefix}e2e-%'"

        async def billed() -> bool:
            rows = clickhouse.query(f"SELECT count() FROM costs FINAL WHERE {where}").result_rows
            return int(rows[0][0]) >= n

        assert await wait_until(billed, timeout_s=60)
        count, distinct, spent = clickhouse.query(
            f"SELECT count(), uniqExact(request_id), sum(cost_usd) FROM costs FINAL WHERE {where}"
        ).result_rows[0]
        assert (count, distinct) == (n, n)
        assert Decimal(spent) == total  # to the last of nine decimals

        by_tenant = query_spend(clickhouse, "tenant", where=where)
        assert {row.key for row in by_tenant} == set(tenants)
        assert sum((row.cost_usd for row in by_tenant), Decimal(0)) == total
        daily = clickhouse.query(
            "SELECT sum(cost_usd), sum(requests) FROM costs_daily WHERE tenant IN "
            "('acme','globex','initech') AND feature = 'tests'"
        ).result_rows[0]
        assert Decimal(daily[0]) >= total
    finally:
        await asyncio.wait_for(pipeline.stop(), timeout=60)
