"""The demo: the whole pipeline on a bundled workload, and what it cost against all-premium.

Requests go through Kafka like any application's; the demo reads their
responses, waits until the cost sink has billed them in ClickHouse, and
reports the tier mix, the spend, and what the same tokens would have cost on
the premium tier. While it runs, it hands a `DemoProgress` snapshot to a
callback (sent, answered, errors, spend so far) so a front end can show it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import orjson
from aiokafka import AIOKafkaProducer

from tierline.processors.pricing.cost import cost_of
from tierline.processors.pricing.prices import Price
from tierline.processors.store.spend import spend_sql
from tierline.schemas import RouteRequest, RouteResponse, Tier, Usage, encode
from tierline.streams.runtime import Pipeline
from tierline.streams.tail import tail_consumer

Phase = Literal["sending", "answering", "billing", "done"]


@dataclass(frozen=True)
class DemoProgress:
    """Where a running demo is: what `run_demo` hands its `progress` callback.

    `cost_usd` is the exact spend of the successful responses so far (the same
    sum the report's `cost_usd` ends with); `billed_*` is what ClickHouse holds,
    known only in the `billing` phase and after.
    """

    total: int
    phase: Phase = "sending"
    sent: int = 0
    answered: int = 0
    errors: int = 0
    cost_usd: Decimal = Decimal(0)
    billed_rows: int = 0
    billed_usd: Decimal = Decimal(0)


def describe_progress(progress: DemoProgress) -> str:
    """One line for a person: `sent 240/240 · answered 118/240 · errors 1 · spend $0.064211`.

    Spend is shown to the micro-dollar, rounded half-even from the exact sum.
    """
    line = (
        f"sent {progress.sent}/{progress.total} · "
        f"answered {progress.answered}/{progress.total} · "
        f"errors {progress.errors} · spend ${progress.cost_usd:.6f}"
    )
    if progress.phase in ("billing", "done"):
        line += f" · billed {progress.billed_rows} rows, ${progress.billed_usd:.6f}"
    return line


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
    # ClickHouse did not hold every billed attempt before the wait ran out
    billing_incomplete: bool = False

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


class DemoTally:
    """The report, kept up to date one sent request and one response at a time.

    Only responses to requests this demo sent count, each once (a redelivered
    response is ignored); `snapshot` is what the progress callback gets.
    """

    def __init__(self, report: DemoReport, premium_price: Price) -> None:
        self.report = report
        self._premium_price = premium_price
        self._sent_at: dict[str, float] = {}
        self._seen: set[str] = set()

    @property
    def sent(self) -> int:
        return len(self._sent_at)

    @property
    def answered(self) -> int:
        return len(self._seen)

    def on_sent(self, request_id: str, now: float) -> None:
        self._sent_at.setdefault(request_id, now)

    def on_response(self, response: RouteResponse, now: float) -> bool:
        """Count `response`; False when it is not ours or already counted."""
        if response.id not in self._sent_at or response.id in self._seen:
            return False
        self._seen.add(response.id)
        report = self.report
        report.latencies_ms.append((now - self._sent_at[response.id]) * 1000)
        report.responses += 1
        # an error answer may carry billed attempts (a refusal, a failed cascade): they
        # are spend, and ClickHouse holds them, which the billing wait compares against
        report.cost_usd += response.cost_usd
        if response.status == "error":
            report.errors += 1
            return True
        report.by_tier[str(response.tier)] += 1
        report.by_provider[response.provider or "?"] += 1
        report.baseline_cost_usd += cost_of(_uncached(response.usage), self._premium_price)
        return True

    def snapshot(self, phase: Phase) -> DemoProgress:
        report = self.report
        return DemoProgress(
            total=report.requests,
            phase=phase,
            sent=self.sent,
            answered=self.answered,
            errors=report.errors,
            cost_usd=report.cost_usd,
            billed_rows=report.billed_rows,
            billed_usd=report.billed_usd,
        )


async def run_demo(
    pipeline: Pipeline,
    requests: list[RouteRequest],
    *,
    timeout_s: float = 180.0,
    billing_timeout_s: float = 30.0,
    progress: Callable[[DemoProgress], None] = lambda snapshot: None,
) -> DemoReport:
    """Send `requests`, gather their responses, wait for their billing; `progress` sees each step.

    `progress` is called after every request sent, whenever responses arrive
    (and at least every 200 ms while waiting), during the wait for ClickHouse,
    and once at the end with phase `done`.
    """
    run_id = uuid.uuid4().hex[:8]
    requests = [r.model_copy(update={"id": f"demo-{run_id}-{i}"}) for i, r in enumerate(requests)]
    report = DemoReport(requests=len(requests), run_id=run_id)
    premium = pipeline.catalog.model(pipeline.catalog.candidates(Tier.PREMIUM)[0])
    tally = DemoTally(report, premium.price)
    topics = pipeline.topics
    isolation = pipeline.settings.isolation_level
    responses = await tail_consumer(pipeline.bootstrap, topics.responses, isolation_level=isolation)
    dead = await tail_consumer(pipeline.bootstrap, topics.dlq, isolation_level=isolation)
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.bootstrap, linger_ms=5)
    await producer.start()
    try:
        progress(tally.snapshot("sending"))
        for request in requests:
            tally.on_sent(request.id, time.monotonic())
            await producer.send(topics.requests, encode(request), key=request.tenant.encode())
            progress(tally.snapshot("sending"))
        await producer.flush()
        deadline = time.monotonic() + timeout_s
        while tally.answered < len(requests) and time.monotonic() < deadline:
            batch = await responses.getmany(timeout_ms=200)
            now = time.monotonic()
            for records in batch.values():
                for record in records:
                    tally.on_response(RouteResponse.model_validate(orjson.loads(record.value)), now)
            progress(tally.snapshot("answering"))
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

    where = f"request_id LIKE 'demo-{run_id}-%'"
    report.spend_sql = spend_sql("tier", where=where)
    if pipeline.sink is not None:
        await _wait_for_billing(
            pipeline,
            report,
            where,
            timeout_s=billing_timeout_s,
            progress=lambda: progress(tally.snapshot("billing")),
        )
    progress(tally.snapshot("done"))
    return report


def _uncached(usage: Usage) -> Usage:
    return Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)


async def _wait_for_billing(
    pipeline: Pipeline,
    report: DemoReport,
    where: str,
    timeout_s: float = 30.0,
    progress: Callable[[], None] = lambda: None,
) -> None:
    """Until ClickHouse holds every billed attempt: its sum must equal the responses' sum.

    Gives up after `timeout_s` (counting the wait for the sink to reach
    ClickHouse at all) and marks the report `billing_incomplete`.
    """
    assert pipeline.sink is not None
    deadline = time.monotonic() + timeout_s
    progress()
    try:
        await asyncio.wait_for(pipeline.sink.ready.wait(), timeout=timeout_s)
    except TimeoutError:
        report.billing_incomplete = True
        return
    client = pipeline.sink.client
    assert client is not None
    sql = f"SELECT count(), sum(cost_usd) FROM costs FINAL WHERE {where}"
    while True:
        rows = (await asyncio.to_thread(client.query, sql)).result_rows
        report.billed_rows, report.billed_usd = int(rows[0][0]), Decimal(rows[0][1])
        progress()
        if report.billed_usd == report.cost_usd:
            return
        if time.monotonic() > deadline:
            report.billing_incomplete = True
            return
        await asyncio.sleep(0.3)
