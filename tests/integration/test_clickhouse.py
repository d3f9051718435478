"""ClickHouse on a real engine (chDB): migrations, dedup, spend, and the sink's patience."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer
from click.testing import CliRunner
from clickhouse_connect.driver.client import Client

from tests.integration.support import sink_settings, wait_until
from tierline.processors.store.clickhouse import insert_costs, migrate
from tierline.schemas import CostRecord, Tier, encode
from tierline.streams.cli import main
from tierline.streams.cost_sink import CostSink
from tierline.streams.topics import ensure_topics


def record(
    rid: str, attempt: int, cost: str, tenant: str = "acme", model: str = "m1"
) -> CostRecord:
    return CostRecord(
        record_id=CostRecord.make_id(rid, attempt),
        request_id=rid,
        attempt=attempt,
        tenant=tenant,
        feature="search",
        tier=Tier.ECONOMY,
        model=model,
        provider="openai",
        status="ok",
        input_tokens=100,
        output_tokens=20,
        cost_usd=Decimal(cost),
        created_at=datetime(2026, 11, 1, 12, 0, tzinfo=UTC),
    )


def test_migrate_is_idempotent_and_versioned(clickhouse: Client) -> None:
    migrate(clickhouse)
    assert migrate(clickhouse) == []  # nothing left to apply
    versions = clickhouse.query(
        "SELECT version FROM tierline_migrations ORDER BY version"
    ).result_rows
    assert [v[0] for v in versions] == sorted({v[0] for v in versions})  # each once
    tables = {r[0] for r in clickhouse.query("SHOW TABLES").result_rows}
    assert {"costs", "costs_daily", "tierline_migrations"} <= tables


def test_a_redelivered_cost_record_counts_once(clickhouse: Client) -> None:
    migrate(clickhouse)
    first = record("dedup-1", 1, "0.000000123")
    insert_costs(clickhouse, [first, record("dedup-2", 1, "0.5")])
    insert_costs(clickhouse, [first])  # the same record again, in another insert
    rows = clickhouse.query(
        "SELECT count(), sum(cost_usd) FROM costs FINAL WHERE request_id LIKE 'dedup-%'"
    ).result_rows[0]
    assert rows[0] == 2
    assert Decimal(rows[1]) == Decimal("0.500000123")
    daily = clickhouse.query(
        "SELECT sum(cost_usd), sum(calls) FROM costs_daily "
        "WHERE day = '2026-11-01' AND feature = 'search'"
    ).result_rows[0]
    assert Decimal(daily[0]) >= Decimal("0.500000123")


def test_spend_command_reports_exact_sums(chdb_url: str, clickhouse: Client) -> None:
    migrate(clickhouse)
    insert_costs(
        clickhouse,
        [
            record("spend-a", 1, "0.000000001", tenant="spend-t1"),
            record("spend-b", 1, "0.25", tenant="spend-t2"),
        ],
    )
    result = CliRunner().invoke(
        main,
        ["spend", "--by", "tenant", "--since", "all", "--format", "json"],
        env={"TIERLINE_CLICKHOUSE_URL": chdb_url},
    )
    assert result.exit_code == 0, result.output
    rows = {row["tenant"]: row for row in orjson.loads(result.output)}
    assert rows["spend-t1"]["cost_usd"] == "0.000000001"
    assert rows["spend-t2"]["cost_usd"] == "0.250000000"
    table = CliRunner().invoke(
        main,
        ["spend", "--by", "model", "--since", "all"],
        env={"TIERLINE_CLICKHOUSE_URL": chdb_url},
    )
    assert table.exit_code == 0 and "m1" in table.output
    bad = CliRunner().invoke(
        main, ["spend", "--since", "yesterday"], env={"TIERLINE_CLICKHOUSE_URL": chdb_url}
    )
    assert bad.exit_code != 0 and "--since" in bad.output


def test_spend_command_csv_and_long_model_names(chdb_url: str, clickhouse: Client) -> None:
    long_model = "openrouter/meta-llama/llama-3.3-70b-instruct:free-with-a-long-routing-suffix"
    migrate(clickhouse)
    insert_costs(
        clickhouse,
        [
            record("spend-csv-a", 1, "0.000000007", tenant="spend-csv", model=long_model),
            record("spend-csv-a", 2, "0.100000000", tenant="spend-csv", model=long_model),
        ],
    )
    env = {"TIERLINE_CLICKHOUSE_URL": chdb_url}
    result = CliRunner().invoke(
        main, ["spend", "--by", "model", "--since", "all", "--format", "csv"], env=env
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "model,requests,calls,input_tokens,output_tokens,cost_usd"
    assert f"{long_model},1,2,200,40,0.100000007" in lines
    table = CliRunner().invoke(main, ["spend", "--by", "model", "--since", "all"], env=env)
    assert table.exit_code == 0, table.output
    assert "…" not in table.output  # folded onto more lines, not cut at 80 columns


async def test_sink_keeps_records_while_clickhouse_refuses_them(
    kafka_bootstrap: str,
    topic_prefix: str,
    chdb_url: str,
    clickhouse: Client,
    tmp_path: Path,
) -> None:
    settings = sink_settings(kafka_bootstrap, topic_prefix, chdb_url, tmp_path)
    topics = await ensure_topics(settings.kafka, kafka_bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    sink = CostSink(settings, topics, kafka_bootstrap, producer)
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    try:
        await asyncio.wait_for(sink.ready.wait(), timeout=30)
        # ClickHouse "goes away": the table the sink writes to disappears
        clickhouse.command("RENAME TABLE costs TO costs_offline")
        ids = [f"{topic_prefix}out-{i}" for i in range(20)]
        for rid in ids:
            await producer.send(topics.costs, encode(record(rid, 1, "0.001")), key=b"acme")
        await producer.send(topics.costs, b"garbage that is not a cost record", key=b"acme")
        await producer.flush()

        async def failing() -> bool:
            return sink.stats.failures >= 2

        assert await wait_until(failing, timeout_s=30)
        assert sink.stats.inserted == 0
        assert sink.stats.dead_letters == 1  # the garbage went to the DLQ, not into the batch
        # ClickHouse is back: the same records land, none lost, none doubled
        clickhouse.command("RENAME TABLE costs_offline TO costs")

        async def landed() -> bool:
            rows = clickhouse.query(
                f"SELECT count() FROM costs FINAL WHERE request_id LIKE '{topic_prefix}out-%'"
            ).result_rows
            return int(rows[0][0]) == len(ids)

        assert await wait_until(landed, timeout_s=60)

        # the rows are visible once chDB has them; the sink counts them a moment later,
        # when its insert call returns (reading the counter at once was this test's race)
        async def counted() -> bool:
            return sink.stats.inserted >= len(ids)

        assert await wait_until(counted, timeout_s=10)
        assert sink.stats.inserted == len(ids)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
        await producer.stop()
