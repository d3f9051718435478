"""Malformed input goes to the DLQ byte for byte, with a reason; the router keeps routing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
from clickhouse_connect.driver.client import Client

from tests.integration.support import (
    collect,
    create_topic,
    make_settings,
    produce,
    request_body,
)
from tierline.processors.simulator import RunningSimulator
from tierline.schemas import DeadLetter, ErrorType, RouteResponse
from tierline.streams.runtime import start_pipeline
from tierline.streams.tail import tail_consumer


async def test_malformed_input_is_dead_lettered_and_answered_where_the_id_is_known(
    kafka_bootstrap: str,
    topic_prefix: str,
    chdb_url: str,
    simulator: RunningSimulator,
    tmp_path: Path,
) -> None:
    settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, simulator.url, tmp_path)
    pipeline = await start_pipeline(settings, roles=("router", "workers"))
    try:
        topics = pipeline.topics
        responses = await tail_consumer(kafka_bootstrap, topics.responses)
        dlq = await tail_consumer(kafka_bootstrap, topics.dlq)
        huge = request_body("bad-huge", "x" * (5 * 1024 * 1024))
        bad = {
            "not-json": b"{this is not json",
            "wrong-types": orjson.dumps(
                {
                    "id": "bad-types",
                    "tenant": "acme",
                    "messages": "hello",
                    "params": {"max_tokens": "many"},
                }
            ),
            "missing-id": orjson.dumps(
                {"tenant": "acme", "messages": [{"role": "user", "content": "hi"}]}
            ),
            "huge": huge,
            "unknown-tier": request_body("bad-tier", "hi", hints={"min_tier": "platinum"}),
        }
        await produce(kafka_bootstrap, topics.requests, list(bad.values()))
        await produce(kafka_bootstrap, topics.requests, [request_body("good-after", "Say hi")])

        letters = await collect(dlq, len(bad), timeout_s=60, settle_s=1)
        assert len(letters) == len(bad)
        by_value = {r.value: DeadLetter.from_headers(r.headers) for r in letters}
        assert set(by_value) == set(bad.values())  # raw bytes kept exactly, even 5 MB
        reasons = {name: by_value[raw] for name, raw in bad.items()}
        assert "not JSON" in reasons["not-json"].reason
        assert reasons["wrong-types"].request_id == "bad-types"
        assert "messages" in reasons["wrong-types"].reason
        assert reasons["missing-id"].request_id == ""
        assert "id" in reasons["missing-id"].reason
        assert reasons["huge"].error_type == ErrorType.PAYLOAD_TOO_LARGE
        assert reasons["unknown-tier"].request_id == "bad-tier"
        assert "min_tier" in reasons["unknown-tier"].reason
        assert all(letter.source_topic == topics.requests for letter in by_value.values())
        assert all(letter.source_offset >= 0 for letter in by_value.values())

        answered = await collect(responses, 4, timeout_s=60, settle_s=1)
        got = {
            r.key.decode(): RouteResponse.model_validate(orjson.loads(r.value)) for r in answered
        }
        assert set(got) == {"bad-types", "bad-huge", "bad-tier", "good-after"}
        for rid in ("bad-types", "bad-huge", "bad-tier"):
            assert got[rid].status == "error"
            error = got[rid].error
            assert error is not None and not error.retryable
        assert got["bad-huge"].error is not None
        assert got["bad-huge"].error.type == ErrorType.PAYLOAD_TOO_LARGE
        assert got["good-after"].status == "ok"  # the router kept running
        assert pipeline.router is not None and pipeline.router.stats.rejected == len(bad)
        await responses.stop()
        await dlq.stop()
    finally:
        await asyncio.wait_for(pipeline.stop(), timeout=60)


async def test_unanswerable_request_gets_an_error_response_and_a_dead_letter(
    kafka_bootstrap: str,
    topic_prefix: str,
    chdb_url: str,
    clickhouse: Client,
    simulator: RunningSimulator,
    tmp_path: Path,
) -> None:
    settings = make_settings(
        kafka_bootstrap, topic_prefix, chdb_url, simulator.url, tmp_path, max_retries=1
    )
    pipeline = await start_pipeline(settings, roles=("router", "workers"))
    try:
        responses = await tail_consumer(kafka_bootstrap, pipeline.topics.responses)
        dlq = await tail_consumer(kafka_bootstrap, pipeline.topics.dlq)
        mine = await create_topic(kafka_bootstrap, f"acme.{topic_prefix}mine")
        body = request_body("doomed", "Translate 'cat' to German [sim:error=500]", reply_to=mine)
        await produce(kafka_bootstrap, pipeline.topics.requests, [body])
        letters = await collect(dlq, 1, timeout_s=60)
        assert len(letters) == 1
        letter = DeadLetter.from_headers(letters[0].headers)
        assert letter.request_id == "doomed"
        assert letter.error_type == ErrorType.SERVER_ERROR
        assert letter.source_topic.startswith(f"{topic_prefix}tier.")
        assert b"doomed" in letters[0].value  # the routed request, whole
        assert await collect(responses, 1, timeout_s=2) == []  # it went to its reply_to topic
        replies_consumer = await tail_consumer(kafka_bootstrap, mine, from_start=True)
        replies = await collect(replies_consumer, 1, timeout_s=30)
        assert len(replies) == 1
        reply = RouteResponse.model_validate(orjson.loads(replies[0].value))
        assert reply.status == "error" and reply.error is not None
        assert reply.error.type == ErrorType.SERVER_ERROR and reply.attempts >= 2
        for consumer in (responses, dlq, replies_consumer):
            await consumer.stop()
    finally:
        await asyncio.wait_for(pipeline.stop(), timeout=60)
