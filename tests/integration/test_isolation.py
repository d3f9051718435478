"""Tenants stay apart on a real broker: ids, reply topics, secrets in prompts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
from clickhouse_connect.driver.client import Client

from tests.integration.support import (
    collect,
    create_topic,
    list_topics,
    make_settings,
    produce,
    request_body,
)
from tierline.processors.simulator import RunningSimulator
from tierline.schemas import ErrorType, RouteResponse
from tierline.streams.runtime import start_pipeline
from tierline.streams.tail import tail_consumer

PRIVATE_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n"
    "aFDrBz9vFqU4yQ0oVd5H0YdW5W9XhS1gN6h8ZxqYx7S9tQk2uJ0n1pQw3e4r5t6y\n"
    "-----END RSA PRIVATE KEY-----"
)


async def test_tenants_ids_reply_topics_and_secrets_are_kept_apart(
    kafka_bootstrap: str,
    topic_prefix: str,
    chdb_url: str,
    simulator: RunningSimulator,
    clickhouse: Client,
    tmp_path: Path,
) -> None:
    settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, simulator.url, tmp_path)
    run = topic_prefix.strip(".")
    acme_replies = await create_topic(kafka_bootstrap, f"acme.{run}.replies")
    globex_replies = await create_topic(kafka_bootstrap, f"globex.{run}.replies")
    pipeline = await start_pipeline(settings, roles=("router", "workers", "sink"))
    try:
        topics = pipeline.topics
        responses = await tail_consumer(kafka_bootstrap, topics.responses)
        acme = await tail_consumer(kafka_bootstrap, acme_replies)
        missing = f"acme.{run}.missing"
        refused = {
            "into-globex": globex_replies,
            "into-internal": topics.requests,
            "into-dunder": "__transaction_state",
            "into-dunder-new": f"__{run}",
            "into-missing": missing,
        }
        bodies = [
            # the same id from two tenants: both are answered
            request_body(f"{run}-shared", "Say hello", tenant="acme", reply_to=acme_replies),
            request_body(f"{run}-shared", "Say hello", tenant="globex"),
            request_body("with-key", f"Fix my deploy script:\n{PRIVATE_KEY}"),
            *(request_body(rid, "Say hi", reply_to=topic) for rid, topic in refused.items()),
        ]
        await produce(kafka_bootstrap, topics.requests, bodies)

        shared = await collect(responses, len(refused) + 2, timeout_s=60, settle_s=1)
        got = [RouteResponse.model_validate(orjson.loads(r.value)) for r in shared]
        by_id = {(r.tenant, r.id): r for r in got}
        assert len(by_id) == len(got) == len(refused) + 2  # each answered exactly once
        assert by_id[("globex", f"{run}-shared")].status == "ok"
        secret = by_id[("acme", "with-key")]
        assert secret.status == "error" and secret.error is not None
        assert secret.error.type == ErrorType.POLICY_DENIED
        for rid in refused:
            answer = by_id[("acme", rid)]
            assert answer.error is not None and answer.error.type == ErrorType.INVALID_REQUEST
            assert "reply_to" in answer.error.message
        (mine,) = await collect(acme, 1, timeout_s=60, settle_s=1)
        assert RouteResponse.model_validate(orjson.loads(mine.value)).status == "ok"

        existing = await list_topics(kafka_bootstrap)
        assert missing not in existing and f"__{run}" not in existing  # nothing auto-created
        assert secret.attempts == 0 and secret.cost_usd == 0  # refused by the router: never sent

        async def billed() -> list[tuple[str, int]]:
            return [
                (str(tenant), int(rows))
                for tenant, rows in clickhouse.query(
                    "SELECT tenant, count() FROM costs FINAL WHERE request_id = "
                    f"'{run}-shared' GROUP BY tenant ORDER BY tenant"
                ).result_rows
            ]

        for _ in range(100):  # the sink flushes every 0.2 s; chDB answers once it has
            if len(await billed()) == 2:
                break
            await asyncio.sleep(0.2)
        assert await billed() == [("acme", 1), ("globex", 1)]  # both billed, once each
        for consumer in (responses, acme):
            await consumer.stop()
    finally:
        await asyncio.wait_for(pipeline.stop(), timeout=60)
