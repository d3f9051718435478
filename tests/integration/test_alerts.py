"""Alerts on a real engine (chDB) and a real Kafka broker: the `alerts` table, the alert
sink with its webhook, and a spend spike going from `tierline.costs` through the cost
sink's anomaly detector to ClickHouse and the webhook."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from aiokafka import AIOKafkaProducer
from clickhouse_connect.driver.client import Client

from tests.integration.support import sink_settings, wait_until
from tests.integration.test_feedback import cost
from tests.unit.test_table_columns import ddl_columns, holds
from tests.unit.test_webhook import Receiver, serving
from tierline.processors.store.clickhouse import insert_alerts, migrate
from tierline.schemas import Alert, CostRecord, encode
from tierline.schemas.rows import columns
from tierline.streams.alert_sink import AlertSink
from tierline.streams.config import AlertsSettings, Settings
from tierline.streams.cost_sink import CostSink
from tierline.streams.topics import Topics, ensure_topics

NOW = datetime.now(UTC).replace(microsecond=0)


def alert(tenant: str, n: int, kind: str = "soft_limit_crossed") -> Alert:
    return Alert.model_validate(
        {
            "alert_id": f"{kind}:{tenant}:day:{n}",
            "kind": kind,
            "tenant": tenant,
            "period": "day",
            "window_start": NOW.replace(hour=0, minute=0, second=0),
            "spent_usd": "80.123456789",
            "limit_usd": "100",
            "detail": "80% of the daily budget",
            "created_at": NOW,
        }
    )


def rows(clickhouse: Client, tenant: str) -> list[tuple[object, ...]]:
    return [
        tuple(row)
        for row in clickhouse.query(
            "SELECT alert_id, kind, spent_usd, window_end FROM alerts FINAL "
            "WHERE tenant = {t:String} ORDER BY alert_id",
            parameters={"t": tenant},
        ).result_rows
    ]


def test_the_alerts_table_has_a_column_for_every_alert_field() -> None:
    ddl = ddl_columns("alerts")
    assert set(columns(Alert)) == set(ddl)
    for name in columns(Alert):
        annotation = Alert.model_fields[name].annotation
        assert holds(ddl[name], annotation), f"alerts.{name}: {ddl[name]} cannot hold it"


def test_a_stored_alert_again_is_one_row(clickhouse: Client) -> None:
    migrate(clickhouse)
    first, second = alert("tbl-t", 1), alert("tbl-t", 2, "hard_limit_reached")
    insert_alerts(clickhouse, [first, second])
    insert_alerts(clickhouse, [first])  # redelivered
    assert rows(clickhouse, "tbl-t") == [
        (second.alert_id, "hard_limit_reached", Decimal("80.123456789"), None),
        (first.alert_id, "soft_limit_crossed", Decimal("80.123456789"), None),
    ]


@asynccontextmanager
async def running(*sinks: AlertSink | CostSink) -> AsyncIterator[None]:
    """The sinks running until the block ends, each ready (connected and migrated)."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(sink.run(stop)) for sink in sinks]
    try:
        for sink in sinks:
            await asyncio.wait_for(sink.ready.wait(), timeout=30)
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)


async def kafka(
    bootstrap: str, prefix: str, chdb_url: str, state_dir: Path, webhook_url: str
) -> tuple[Settings, Topics, AIOKafkaProducer]:
    settings = sink_settings(bootstrap, prefix, chdb_url, state_dir)
    settings.alerts = AlertsSettings(webhook_url=webhook_url, webhook_timeout_s=2)
    topics = await ensure_topics(settings.kafka, bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    return settings, topics, producer


async def test_the_alert_sink_stores_each_alert_once_and_posts_it(
    kafka_bootstrap: str, topic_prefix: str, chdb_url: str, clickhouse: Client, tmp_path: Path
) -> None:
    tenant = f"{topic_prefix}acme"
    receiver = Receiver(failures=1)  # the webhook's first answer is a 503: retried
    async with serving(receiver) as base:
        settings, topics, producer = await kafka(
            kafka_bootstrap, topic_prefix, chdb_url, tmp_path, f"{base}/hook?token=t"
        )
        sink = AlertSink(settings, topics, kafka_bootstrap, producer)
        try:
            async with running(sink):
                sent = [alert(tenant, 1), alert(tenant, 2, "hard_limit_reached")]
                for value in [*sent, sent[0]]:  # the first one twice
                    await producer.send(topics.alerts, encode(value), key=tenant.encode())
                await producer.send(topics.alerts, b'{"alert_id": "x"}', key=b"x")
                await producer.flush()

                async def landed() -> bool:
                    stored = len(rows(clickhouse, tenant)) == 2
                    return stored and sink.stats.dead_letters == 1

                assert await wait_until(landed, timeout_s=60)
                assert sink.webhook is not None
                webhook = sink.webhook

                async def posted() -> bool:
                    return webhook.stats.delivered == 2

                assert await wait_until(posted, timeout_s=30)
        finally:
            await producer.stop()
    assert len(receiver.bodies) == 3  # each alert once, and the refused first post again
    posts = [Alert.model_validate_json(body) for body in receiver.bodies]
    assert {a.alert_id: a for a in posts} == {a.alert_id: a for a in sent}


def spend(tenant: str, start: datetime) -> Iterator[CostRecord]:
    """Eight quiet hours of a cost every five minutes, one $60 bucket, one more quiet cost."""
    rng = random.Random(3)
    for i in range(100):
        if i == 97:
            continue
        usd = "60" if i == 96 else f"{rng.uniform(1.5, 2.5):.6f}"
        record = cost(f"{tenant}-r{i}", 1, usd, tenant=tenant)
        yield record.model_copy(update={"created_at": start + timedelta(minutes=5 * i, seconds=30)})


async def test_a_spend_spike_on_the_cost_topic_becomes_one_stored_and_posted_alert(
    kafka_bootstrap: str, topic_prefix: str, chdb_url: str, clickhouse: Client, tmp_path: Path
) -> None:
    tenant = f"{topic_prefix}spiky"
    start = (NOW - timedelta(hours=10)).replace(minute=0, second=0)
    receiver = Receiver()
    async with serving(receiver) as base:
        settings, topics, producer = await kafka(
            kafka_bootstrap, topic_prefix, chdb_url, tmp_path, f"{base}/hook"
        )
        costs = CostSink(settings, topics, kafka_bootstrap, producer)
        alerts = AlertSink(settings, topics, kafka_bootstrap, producer)
        try:
            async with running(costs, alerts):
                for record in spend(tenant, start):
                    await producer.send(topics.costs, encode(record), key=tenant.encode())
                await producer.flush()

                async def landed() -> bool:
                    return len(rows(clickhouse, tenant)) == 1 and len(receiver.bodies) == 1

                assert await wait_until(landed, timeout_s=60)
        finally:
            await producer.stop()
    spike = start + timedelta(minutes=5 * 96)
    [(alert_id, kind, spent, window_end)] = rows(clickhouse, tenant)
    assert alert_id == f"anomaly:{tenant}:faq:m1:{spike.isoformat()}"
    assert (kind, spent) == ("spend_anomaly", Decimal("60"))
    assert window_end == (spike + timedelta(minutes=5)).replace(tzinfo=None)
    assert Alert.model_validate_json(receiver.bodies[0]).alert_id == alert_id
