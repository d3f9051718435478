"""The response cache on real Kafka: a repeated request answered with no provider call, never
across tenants, warm after the workers process restarts, and its saving in `tierline spend`."""

from __future__ import annotations

import asyncio
import subprocess
from decimal import Decimal
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer
from click.testing import CliRunner
from clickhouse_connect.driver.client import Client

from tests.integration.support import (
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
from tierline.processors.simulator import RunningSimulator
from tierline.schemas import RouteResponse
from tierline.streams.cli import main
from tierline.streams.runtime import start_pipeline
from tierline.streams.tail import tail_consumer

PROMPT = "Translate 'thank you very much' into Japanese."
#: the workers read the policy file's [cache] section: temperature 0 is enough, no hint
POLICY = "[cache]\ntemperature_zero = true\nttl_s = 600\n"


async def test_a_repeated_request_is_answered_from_the_cache_and_saves_its_cost(
    kafka_bootstrap: str,
    topic_prefix: str,
    chdb_url: str,
    clickhouse: Client,
    simulator: RunningSimulator,
    tmp_path: Path,
) -> None:
    settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, simulator.url, tmp_path)
    pipeline = await start_pipeline(settings, roles=("router", "sink"))
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    env = role_env(
        kafka_bootstrap, topic_prefix, tmp_path / "w", simulator.url, router_policy=str(policy)
    )
    log = tmp_path / "workers.log"
    workers: subprocess.Popen[bytes] | None = start_role("workers", env, log)
    acme, globex = f"{topic_prefix}acme", f"{topic_prefix}globex"
    responses = await tail_consumer(kafka_bootstrap, pipeline.topics.responses)

    async def ask(rid: str, tenant: str = acme) -> RouteResponse:
        body = request_body(f"{topic_prefix}{rid}", PROMPT, tenant, params={"temperature": 0})
        await produce(kafka_bootstrap, pipeline.topics.requests, [body], key=tenant.encode())
        return await answer(responses, f"{topic_prefix}{rid}", log)

    try:
        first = await ask("first")
        assert first.status == "ok" and not first.cached and first.cost_usd > 0
        calls = simulator.stats.requests

        again = await ask("again")  # the same body, another id: a hit
        assert again.cached and again.status == "ok"
        assert (again.content, again.model, again.provider) == (
            first.content,
            first.model,
            first.provider,
        )
        assert again.cost_usd == Decimal(0) and again.usage.output_tokens == 0
        assert simulator.stats.requests == calls  # no provider call

        other = await ask("other-tenant", tenant=globex)  # the same body, another tenant
        assert not other.cached and other.cost_usd > 0
        assert simulator.stats.requests == calls + 1
        calls += 1

        # a new workers process: its cache is empty until it reads tierline.cache
        stop_roles(workers)
        workers = start_role("workers", env, log)
        warm = await ask("after-restart")
        assert warm.cached and warm.content == first.content, log_tail(log)
        assert simulator.stats.requests == calls  # still no provider call

        # billed once each: the misses at their cost, the hits at 0 with the miss's cost saved
        asked = ("first", "again", "other-tenant", "after-restart")
        ids = [f"{topic_prefix}{rid}" for rid in asked]
        where = f"request_id IN ({', '.join(repr(i) for i in ids)})"

        async def billed() -> bool:
            rows = clickhouse.query(f"SELECT count() FROM costs FINAL WHERE {where}").result_rows
            return int(rows[0][0]) >= len(ids)

        assert await wait_until(billed, timeout_s=60)
        rows = clickhouse.query(
            "SELECT request_id, record_id, cost_usd, saved_usd, output_tokens "
            f"FROM costs FINAL WHERE {where} ORDER BY request_id"
        ).result_rows
        by_id = {r[0]: r[1:] for r in rows}
        assert len(rows) == len(ids)  # one row each: the misses made one call, the hits none
        for hit in ("again", "after-restart"):
            rid = f"{topic_prefix}{hit}"
            assert by_id[rid] == (f"{rid}#cache", Decimal(0), first.cost_usd, 0)
        assert by_id[f"{topic_prefix}first"][1:3] == (first.cost_usd, Decimal(0))
        daily = clickhouse.query(
            f"SELECT sum(cost_usd), sum(saved_usd) FROM costs_daily WHERE tenant = '{acme}'"
        ).result_rows[0]
        assert (Decimal(daily[0]), Decimal(daily[1])) == (first.cost_usd, 2 * first.cost_usd)

        spend = CliRunner().invoke(
            main,
            ["spend", "--by", "tenant", "--tenant", acme, "--since", "1h"],
            env={"TIERLINE_CLICKHOUSE_URL": chdb_url},
        )
        assert spend.exit_code == 0, spend.output
        printed = " ".join(spend.output.split())
        saved = format(2 * first.cost_usd, "f")
        assert f"saved by cache: ${saved} (2 answers from the response cache" in printed
        assert format(first.cost_usd, "f") in printed  # the spend itself: the one miss
    finally:
        await responses.stop()
        stop_roles(workers)
        await asyncio.wait_for(pipeline.stop(), timeout=60)


async def answer(responses: AIOKafkaConsumer, request_id: str, log: Path) -> RouteResponse:
    """The response to `request_id` (others on the topic are skipped)."""
    for _ in range(6):
        for record in await collect(responses, 1, timeout_s=15):
            response = RouteResponse.model_validate(orjson.loads(record.value))
            if response.id == request_id:
                return response
    raise AssertionError(f"no answer to {request_id}:\n{log_tail(log)}")
