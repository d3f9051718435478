"""The demo: the whole pipeline on a bundled workload, and what it cost against all-premium.

Requests go through Kafka like any application's; the demo reads their
responses, waits until the cost sink has billed them in ClickHouse, and
reports the tier mix, the spend, and what the same tokens would have cost on
the premium tier.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from tierline.processors.pricing.cost import cost_of
from tierline.processors.store.spend import spend_sql
from tierline.schemas import RouteRequest, RouteResponse, Tier, Usage, encode
from tierline.streams.runtime import Pipeline
from tierline.streams.tail import tail_consumer


@dataclass
class DemoReport:
    requests: int
    responses: int = 0
    errors: int = 0
    dlq: int = 0
    cost_usd: Decimal = Decimal(0)
    billed_usd: Decimal = Decimal(0)
    billed_rows: int = 0
    baseline_cost_usd: Decimal = Decimal(0)
    by_tier: Counter[str] = field(default_factory=Counter)
    by_provider: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    run_id: str = ""
    spend_sql: str = ""

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "responses": self.responses,
            "errors": self.errors,
            "dlq": self.dlq,
            "cost_usd": str(self.cost_usd),
            "baseline_cost_usd": str(self.baseline_cost_usd),
            "by_tier": dict(sorted(self.by_tier.items())),
            "by_provider": dict(sorted(self.by_provider.items())),
            "latency_ms": {
                "p50": self.percentile(0.5),
                "p95": self.percentile(0.95),
                "p99": self.percentile(0.99),
            },
            "billed_usd": str(self.billed_usd),
            "billed_rows": self.billed_rows,
        }


async def run_demo(
    pipeline: Pipeline,
    requests: list[RouteRequest],
    *,
    timeout_s: float = 180.0,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> DemoReport:
    run_id = uuid.uuid4().hex[:8]
    requests = [r.model_copy(update={"id": f"demo-{run_id}-{i}"}) for i, r in enumerate(requests)]
    report = DemoReport(requests=len(requests), run_id=run_id)
    topics = pipeline.topics
    responses = await tail_consumer(pipeline.bootstrap, topics.responses)
    dead = await tail_consumer(pipeline.bootstrap, topics.dlq)
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.bootstrap, linger_ms=5)
    await producer.start()
    sent_at: dict[str, float] = {}
    seen: dict[str, RouteResponse] = {}
    try:
        for request in requests:
            sent_at[request.id] = time.monotonic()
            await producer.send(topics.requests, encode(request), key=request.tenant.encode())
        await producer.flush()
        deadline = time.monotonic() + timeout_s
        while len(seen) < len(requests) and time.monotonic() < deadline:
            batch = await responses.getmany(timeout_ms=200)
            now = time.monotonic()
            for records in batch.values():
                for record in records:
                    response = RouteResponse.model_validate(orjson.loads(record.value))
                    if response.id in sent_at and response.id not in seen:
                        seen[response.id] = response
                        report.latencies_ms.append((now - sent_at[response.id]) * 1000)
            progress(len(seen), len(requests))
        dlq_batch = await dead.getmany(timeout_ms=500)
        report.dlq = sum(
            1
            for records in dlq_batch.values()
            for record in records
            if any(
                k == "tierline.request_id" and v.decode().startswith(f"demo-{run_id}-")
                for k, v in record.headers
            )
        )
    finally:
        await producer.stop()
        await responses.stop()
        await dead.stop()

    premium = pipeline.catalog.model(pipeline.catalog.candidates(Tier.PREMIUM)[0])
    for response in seen.values():
        report.responses += 1
        if response.status == "error":
            report.errors += 1
            continue
        report.cost_usd += response.cost_usd
        report.by_tier[str(response.tier)] += 1
        report.by_provider[response.provider or "?"] += 1
        report.baseline_cost_usd += cost_of(_uncached(response.usage), premium.price)
    where = f"request_id LIKE 'demo-{run_id}-%'"
    report.spend_sql = spend_sql("tier", where=where)
    if pipeline.sink is not None:
        await _wait_for_billing(pipeline, report, where)
    return report


def _uncached(usage: Usage) -> Usage:
    return Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)


async def _wait_for_billing(
    pipeline: Pipeline, report: DemoReport, where: str, timeout_s: float = 30.0
) -> None:
    """Until ClickHouse holds every billed attempt: its sum must equal the responses' sum."""
    assert pipeline.sink is not None
    await pipeline.sink.ready.wait()
    client = pipeline.sink.client
    assert client is not None
    sql = f"SELECT count(), sum(cost_usd) FROM costs FINAL WHERE {where}"
    deadline = time.monotonic() + timeout_s
    while True:
        rows = (await asyncio.to_thread(client.query, sql)).result_rows
        report.billed_rows, report.billed_usd = int(rows[0][0]), Decimal(rows[0][1])
        if report.billed_usd == report.cost_usd or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.3)
