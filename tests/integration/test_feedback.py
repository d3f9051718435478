"""Feedback on a real engine (chDB): the table, the decisions view, the per-arm SQL of the
policy example, `tierline train --from-clickhouse`, and the feedback sink on real Kafka."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from aiokafka import AIOKafkaProducer
from click.testing import CliRunner
from clickhouse_connect.driver.client import Client

from tests.integration.support import sink_settings, wait_until
from tierline.processors.routing.policy_file import load_policy
from tierline.processors.store.clickhouse import insert_costs, insert_feedback, migrate
from tierline.schemas import CostRecord, Feedback, Tier, encode
from tierline.streams.cli import main
from tierline.streams.feedback_sink import FeedbackSink
from tierline.streams.topics import ensure_topics

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "policy.example.toml"
NOW = datetime.now(UTC).replace(microsecond=0)


def cost(
    rid: str,
    attempt: int,
    usd: str,
    *,
    tenant: str = "fb",
    task: str = "qa",
    feature: str = "faq",
    tier: Tier = Tier.ECONOMY,
    model: str = "m1",
    reasons: tuple[str, ...] = (),
) -> CostRecord:
    return CostRecord(
        record_id=CostRecord.make_id(rid, attempt),
        request_id=rid,
        attempt=attempt,
        tenant=tenant,
        feature=feature,
        task=task,
        tier=tier,
        model=model,
        provider="openai",
        status="ok",
        cost_usd=Decimal(usd),
        reasons=list(reasons),
        created_at=NOW,
    )


def signal(
    rid: str, source: str = "thumbs", seconds: int = 0, tenant: str = "fb", **values: object
) -> Feedback:
    return Feedback.model_validate(
        {
            "request_id": rid,
            "tenant": tenant,
            "source": source,
            "created_at": NOW + timedelta(seconds=seconds),
            **values,
        }
    )


def test_feedback_joins_the_request_of_its_own_tenant_only(clickhouse: Client) -> None:
    migrate(clickhouse)
    insert_costs(clickhouse, [cost("iso-1", 1, "0.1", tenant="iso-a")])
    insert_costs(clickhouse, [cost("iso-1", 1, "0.2", tenant="iso-b")])
    insert_feedback(clickhouse, [signal("iso-1", score=0.0, tenant="iso-b")])
    rows = clickhouse.query(
        "SELECT tenant, cost_usd, feedback_signals, feedback_score FROM decisions "
        "WHERE request_id = 'iso-1' ORDER BY tenant"
    ).result_rows
    assert rows == [("iso-a", Decimal("0.1"), 0, None), ("iso-b", Decimal("0.2"), 1, 0.0)]


def test_the_migrations_add_feedback_and_decisions(clickhouse: Client) -> None:
    migrate(clickhouse)
    tables = {r[0] for r in clickhouse.query("SHOW TABLES").result_rows}
    assert {"feedback", "decisions"} <= tables
    versions = {
        r[0] for r in clickhouse.query("SELECT version FROM tierline_migrations").result_rows
    }
    assert {3, 4, 5} <= versions


def test_decisions_join_costs_to_feedback_counting_each_signal_once(
    clickhouse: Client,
) -> None:
    migrate(clickhouse)
    insert_costs(
        clickhouse,
        [
            cost("dv-1", 1, "0.1"),
            cost("dv-1", 2, "0.5", tier=Tier.PREMIUM, model="big", reasons=("escalated",)),
            cost("dv-2", 1, "0.2"),
            cost("dv-3", 1, "0.3"),
        ],
    )
    first = signal("dv-1", score=0.5)
    insert_feedback(
        clickhouse, [first, signal("dv-1", "ui", label="edited"), signal("dv-2", label="ok")]
    )
    insert_feedback(clickhouse, [first])  # redelivered
    insert_feedback(clickhouse, [signal("dv-1", seconds=5, score=1.0)])  # corrected by its source
    rows = clickhouse.query(
        "SELECT request_id, tier, model, calls, cost_usd, reasons, feedback_signals, "
        "feedback_score, feedback_labels FROM decisions WHERE request_id LIKE 'dv-%' "
        "ORDER BY request_id"
    ).result_rows
    assert rows == [
        ("dv-1", "premium", "big", 2, Decimal("0.6"), ["escalated"], 2, 1.0, ["edited"]),
        ("dv-2", "economy", "m1", 1, Decimal("0.2"), [], 1, None, ["ok"]),
        ("dv-3", "economy", "m1", 1, Decimal("0.3"), [], 0, None, []),
    ]


def _example_sql() -> tuple[str, str]:
    """The per-arm query documented in deploy/policy.example.toml, and its experiment."""
    text = EXAMPLE.read_text()
    block = re.search(r"^#   SELECT\n(?:^#.*\n)*?^#   ORDER BY arm;$", text, re.MULTILINE)
    assert block is not None, "the example's per-arm SQL is missing"
    sql = "\n".join(line[2:] for line in block.group().splitlines()).rstrip(";")
    return sql, load_policy(EXAMPLE).experiments[0].name


def test_the_example_per_arm_query_reports_spend_and_feedback(
    clickhouse: Client,
) -> None:
    migrate(clickhouse)
    sql, name = _example_sql()
    records, signals = [], []
    for i in range(6):
        arm = "nano" if i % 2 else "flash"
        rid = f"arm-{i}"
        records.append(
            cost(
                rid,
                1,
                "0.01" if arm == "nano" else "0.03",
                reasons=("task=classification", f"experiment={name} arm={arm}"),
            )
        )
        signals.append(signal(rid, score=0.5 if arm == "nano" else 1.0))
    records.append(cost("arm-other", 1, "9", reasons=(f"experiment {name} skipped (no)",)))
    insert_costs(clickhouse, records)
    insert_feedback(clickhouse, signals[:-1])  # one request without feedback
    rows = clickhouse.query(sql).result_rows
    assert [(r[0], r[1], Decimal(r[2]), r[4], r[5]) for r in rows] == [
        ("flash", 3, Decimal("0.09"), 3, 1.0),
        ("nano", 3, Decimal("0.03"), 2, 0.5),
    ]


def test_train_from_clickhouse_writes_floors(
    chdb_url: str,
    clickhouse: Client,
    tmp_path: Path,
) -> None:
    migrate(clickhouse)
    records, signals = [], []
    for i in range(40):
        for tier, score in ((Tier.ECONOMY, 0.4), (Tier.STANDARD, 0.9)):
            rid = f"tr-{tier}-{i}"
            records.append(
                cost(rid, 1, "0.001", tenant="train-t", task="code", feature="pr", tier=tier)
            )
            signals.append(signal(rid, score=score, tenant="train-t"))
    insert_costs(clickhouse, records)
    insert_feedback(clickhouse, signals)
    out = tmp_path / "floors.toml"
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--from-clickhouse",
            chdb_url,
            "--tenant",
            "train-t",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert '"min_tier":"standard"' in result.output
    floors = load_policy(out).routing.floors
    assert [(f.task, f.feature, f.min_tier) for f in floors] == [("code", None, Tier.STANDARD)]
    mixed = CliRunner().invoke(
        main, ["train", "--from-clickhouse", chdb_url, "--dataset", str(out), "--out", str(out)]
    )
    assert mixed.exit_code != 0 and "replaces" in mixed.output


async def test_the_feedback_sink_lands_signals_once(
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
    sink = FeedbackSink(settings, topics, kafka_bootstrap, producer)
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    ids = [f"{topic_prefix}fb-{i}" for i in range(10)]
    try:
        await asyncio.wait_for(sink.ready.wait(), timeout=30)
        for rid in ids:
            value = encode(signal(rid, score=0.75))
            await producer.send(topics.feedback, value, key=rid.encode())
            await producer.send(topics.feedback, value, key=rid.encode())  # redelivered
        await producer.send(
            topics.feedback, b'{"request_id": "x"}', key=b"x"
        )  # no source, no score
        await producer.flush()

        async def landed() -> bool:
            rows = clickhouse.query(
                f"SELECT count() FROM feedback FINAL WHERE request_id LIKE '{topic_prefix}fb-%'"
            ).result_rows
            return int(rows[0][0]) == len(ids) and sink.stats.dead_letters == 1

        assert await wait_until(landed, timeout_s=60)
        total = clickhouse.query(
            f"SELECT sum(score) FROM feedback FINAL WHERE request_id LIKE '{topic_prefix}fb-%'"
        ).result_rows[0][0]
        assert total == 7.5
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
        await producer.stop()
