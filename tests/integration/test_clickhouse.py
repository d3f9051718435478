"""ClickHouse on a real engine (chDB): migrations, dedup, spend, and the sink's patience."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer
from click.testing import CliRunner
from clickhouse_connect.driver.client import Client

from tests.integration.support import sink_settings, wait_until
from tierline.processors.store.clickhouse import (
    COST_COLUMNS,
    insert_attempts,
    insert_costs,
    migrate,
)
from tierline.processors.store.spend import (
    SpendFilter,
    query_spend,
    query_unconfirmed,
    spend_query,
)
from tierline.schemas import Attempt, CostRecord, Tier, encode
from tierline.schemas.rows import row
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


def test_an_open_batch_item_is_not_a_cut_off_call_until_its_batch_would_be_given_up(
    clickhouse: Client,
) -> None:
    """A call started 10 minutes ago and never settled was cut off; a batch item started
    then is waiting for its batch (hours, by design), unless it is past the lane's 25 h."""
    migrate(clickhouse)
    now = datetime.now(UTC)

    def started(attempt_id: str, ago: timedelta) -> Attempt:
        return Attempt(
            attempt_id=attempt_id,
            request_id=attempt_id.split("#")[0],
            tenant="acme",
            tier=Tier.BATCH,
            model="gpt-4.1-nano",
            provider="openai",
            state="started",
            estimated_cost_usd=Decimal("0.001"),
            created_at=now - ago,
        )

    insert_attempts(
        clickhouse,
        [
            started("uc-sync#1@a1", timedelta(minutes=10)),
            started("uc-batch#batch:tl-1", timedelta(minutes=10)),
            started("uc-old#batch:tl-2", timedelta(hours=26)),
        ],
    )
    mine = "request_id LIKE 'uc-%'"
    cut_off = query_unconfirmed(clickhouse, where=mine)
    assert (cut_off.calls, cut_off.estimated_usd) == (2, Decimal("0.002"))
    ids = clickhouse.query(
        f"SELECT attempt_id FROM attempts FINAL WHERE {mine} ORDER BY attempt_id"
    ).result_rows
    assert len(ids) == 3  # all three are there; the open batch item is just not counted


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


def test_every_token_class_reaches_the_daily_rollup_and_spend(
    chdb_url: str, clickhouse: Client
) -> None:
    migrate(clickhouse)
    # the prompt caching page's 1-hour example, priced on claude-sonnet-4-5
    # (tests/unit/test_providers_anthropic.py)
    billed = record("classes-a", 1, "0.016539", tenant="classes-t").model_copy(
        update={
            "input_tokens": 4404,
            "cached_input_tokens": 1800,
            "cache_write_tokens": 556,
            "cache_write_1h_tokens": 100,
            "output_tokens": 503,
        }
    )
    insert_costs(clickhouse, [billed, billed])  # redelivered: counted once
    # a row from a sink that predates the 1-hour column: its writes read as 5-minute ones
    old_columns = [c for c in COST_COLUMNS if c != "cache_write_1h_tokens"]
    old = record("classes-b", 1, "0.000001", tenant="classes-t").model_copy(
        update={"cache_write_tokens": 50, "input_tokens": 150}
    )
    values = dict(zip(COST_COLUMNS, row(old), strict=True))
    clickhouse.insert("costs", [[values[c] for c in old_columns]], column_names=old_columns)
    daily = clickhouse.query(
        "SELECT calls, input_tokens, cached_input_tokens, cache_write_tokens, "
        "cache_write_1h_tokens, output_tokens, cost_usd FROM costs_daily "
        "WHERE tenant = 'classes-t'"
    ).result_rows
    assert daily == [(2, 4554, 1800, 606, 100, 523, Decimal("0.016540000"))]
    rows = _spend(chdb_url, "--by tenant --tenant classes-t --since all --token-classes")
    assert rows == [
        {
            "tenant": "classes-t",
            "requests": 2,
            "calls": 2,
            "input_tokens": 4554,
            "output_tokens": 523,
            "cached_input_tokens": 1800,
            "cache_write_tokens": 606,
            "cache_write_1h_tokens": 100,
            "cost_usd": "0.016540000",
        }
    ]


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


# `tierline spend` with filters, a window and several --by dimensions. The rows sit on
# two February 2025 days, apart from every other test's, and each query names the
# tenants it reads, so rows other tests leave in the shared engine never count.
FEB_1, FEB_3 = datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 2, 3, tzinfo=UTC)
MULTI = "--tenant multi-a --tenant multi-b"
FEBRUARY = "--since 2025-02-01 --until 2025-02-03"
# request, tenant, model, cost, hours after Feb 1 00:00 UTC; m-dear calls are premium chats
FEBRUARY_ROWS = [
    ("multi-1", "multi-a", "m-cheap", "0.000000001", 12),
    ("multi-1", "multi-a", "m-dear", "0.5", 12),  # the same request's second attempt
    ("multi-2", "multi-a", "m-cheap", "0.25", 36),
    ("multi-3", "multi-a", "m-cheap", "0.000000002", 48 - 1 / 3_600_000),  # the last ms in
    ("multi-4", "multi-a", "m-cheap", "7", 48),  # the first ms out: --until is exclusive
    ("multi-5", "multi-b", "m-cheap", "0.1", 12),
    ("multi-6", "multi-b", "m-dear", "1.000000003", 36),
]


def _at(billed: CostRecord, when: datetime, **changes: object) -> CostRecord:
    """`billed`, made at `when`, with `changes` to its other fields."""
    return billed.model_copy(update={"created_at": when, **changes})


def _insert_february(clickhouse: Client) -> None:
    migrate(clickhouse)
    seen: list[str] = []
    records = []
    for rid, tenant, model, cost, hours in FEBRUARY_ROWS:
        seen.append(rid)
        dear = model == "m-dear"
        changes = {"feature": "chat", "tier": Tier.PREMIUM} if dear else {}
        billed = record(rid, seen.count(rid), cost, tenant, model)
        records.append(_at(billed, FEB_1 + timedelta(hours=hours), **changes))
    insert_costs(clickhouse, records)


def _invoke(chdb_url: str, flags: str, *more: str) -> str:
    """`tierline spend FLAGS MORE...`'s output; `more` for values with spaces in them."""
    result = CliRunner().invoke(
        main, ["spend", *flags.split(), *more], env={"TIERLINE_CLICKHOUSE_URL": chdb_url}
    )
    assert result.exit_code == 0, result.output
    return result.output


def _spend(chdb_url: str, flags: str, *more: str) -> list[dict[str, object]]:
    records: list[dict[str, object]] = orjson.loads(
        _invoke(chdb_url, f"--format json {flags}", *more)
    )
    return records


def _costs(chdb_url: str, flags: str, *more: str) -> list[object]:
    return [r["cost_usd"] for r in _spend(chdb_url, flags, *more)]


def test_spend_groups_by_several_dimensions_most_expensive_first(
    chdb_url: str, clickhouse: Client
) -> None:
    _insert_february(clickhouse)
    rows = _spend(chdb_url, f"--by tenant --by model {MULTI} {FEBRUARY}")
    assert [(r["tenant"], r["model"], r["calls"], r["cost_usd"]) for r in rows] == [
        ("multi-b", "m-dear", 1, "1.000000003"),
        ("multi-a", "m-dear", 1, "0.500000000"),
        ("multi-a", "m-cheap", 3, "0.250000003"),  # Feb 3, 00:00 is outside [since, until)
        ("multi-b", "m-cheap", 1, "0.100000000"),
    ]
    assert rows == _spend(chdb_url, f"--by tenant,model {MULTI} {FEBRUARY}")
    assert _invoke(chdb_url, f"--by day,tenant {MULTI} {FEBRUARY} --format csv").splitlines() == [
        "day,tenant,requests,calls,input_tokens,output_tokens,cost_usd",
        "2025-02-02,multi-b,1,1,100,20,1.000000003",
        "2025-02-01,multi-a,1,2,200,40,0.500000001",
        "2025-02-02,multi-a,2,2,200,40,0.250000002",
        "2025-02-01,multi-b,1,1,100,20,0.100000000",
    ]
    table = _invoke(chdb_url, f"--by tenant --by tier {MULTI} {FEBRUARY}")
    assert "premium" in table and "1.850000006" in table  # the total


def test_spend_filters_keep_any_of_their_values_and_all_apply(
    chdb_url: str, clickhouse: Client
) -> None:
    _insert_february(clickhouse)
    chat = _spend(chdb_url, f"--by tenant --feature chat {MULTI} {FEBRUARY}")
    assert [(r["tenant"], r["cost_usd"]) for r in chat] == [
        ("multi-b", "1.000000003"),
        ("multi-a", "0.500000000"),
    ]
    cheap_a = _spend(chdb_url, "--by model --tenant multi-a --model m-cheap --tier economy "
                     "--since all")  # fmt: skip
    assert [(r["model"], r["calls"], r["cost_usd"]) for r in cheap_a] == [
        ("m-cheap", 4, "7.250000003")  # no --until: Feb 3 counts too
    ]
    assert _spend(chdb_url, "--tenant multi-a --tier batch --since all") == []


def test_spend_windows_take_iso_times_and_spans(chdb_url: str, clickhouse: Client) -> None:
    _insert_february(clickhouse)
    day_one = _spend(
        chdb_url, f"--by tenant {MULTI} --since 2025-02-01T00:00:00Z --until 2025-02-02T00:00Z"
    )
    assert [(r["tenant"], r["cost_usd"]) for r in day_one] == [
        ("multi-a", "0.500000001"),
        ("multi-b", "0.100000000"),
    ]
    # 01:00 in UTC+1 is midnight UTC: the Feb 3 row is the first one outside
    to_midnight = "--tenant multi-a --since 2025-02-02 --until 2025-02-03T01:00:00+01:00"
    assert _costs(chdb_url, to_midnight) == ["0.250000002"]

    now = datetime.now(UTC)
    insert_costs(
        clickhouse,
        [
            _at(record("recent-1", 1, "3", "multi-recent"), now - timedelta(days=3)),
            _at(record("recent-2", 1, "1", "multi-recent"), now - timedelta(hours=36)),
            _at(record("recent-3", 1, "0.5", "multi-recent"), now - timedelta(minutes=30)),
        ],
    )
    assert _costs(chdb_url, "--tenant multi-recent --since 2d --until 1h") == ["1.000000000"]
    assert _costs(chdb_url, "--tenant multi-recent --since 4d --until 2d") == ["3.000000000"]
    assert _costs(chdb_url, "--tenant multi-recent --since 1h") == ["0.500000000"]
    empty = CliRunner().invoke(
        main, ["spend", "--since", "1d", "--until", "2d"], env={"TIERLINE_CLICKHOUSE_URL": chdb_url}
    )
    assert empty.exit_code == 2 and "--until" in empty.output


def test_spend_values_are_parameters_and_injection_is_inert(
    chdb_url: str, clickhouse: Client
) -> None:
    _insert_february(clickhouse)
    odd = "o'brien \\' OR 1=1 --"  # a real tenant name with a quote and a backslash
    insert_costs(clickhouse, [_at(record("odd-1", 1, "0.000000005", odd), FEB_1)])
    for attempt in ("x' OR 1=1 --", "multi-a' OR '1'='1", "multi-a') OR (1=1"):
        assert _spend(chdb_url, "--since all --tenant", attempt) == []
        shown = _invoke(chdb_url, "--since all --show-sql --tenant", attempt)
        assert clickhouse.query(shown).result_rows == []  # the printed SQL is safe too
    found = _spend(chdb_url, f"{FEBRUARY} --tenant", odd)
    assert [(r["tenant"], r["cost_usd"]) for r in found] == [(odd, "0.000000005")]
    # the printed literal SQL reads the same rows as the parametrized query that runs
    rows = SpendFilter(FEB_1, FEB_3, tenants=("multi-a", "multi-b", odd), features=("search",))
    query = spend_query(["tenant", "day"], rows)
    assert query.parameters["tenant"] == ("multi-a", "multi-b", odd)
    assert odd not in query.sql
    assert query.run(clickhouse) == clickhouse.query(query.literal()).result_rows
    assert [r.keys for r in query_spend(clickhouse, ["tenant", "day"], rows=rows)] == [
        ("multi-a", "2025-02-02"),
        ("multi-b", "2025-02-01"),
        (odd, "2025-02-01"),
        ("multi-a", "2025-02-01"),
    ]


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
