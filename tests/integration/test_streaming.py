"""Streamed answers through the real pipeline: chunks on the reply topic, then the response.

Router and workers run in this process on a real broker; the providers are the
simulator, which streams in each wire format. A Kafka consumer of
`tierline.responses` reads a streamed request's chunks in order, then its one
response, whose text the chunks add up to.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.support import collect, make_settings, produce, request_body
from tierline.processors.simulator import (
    ModelOverride,
    RunningSimulator,
    SimulatorProfile,
    start_simulator,
)
from tierline.schemas import ResponseChunk, RouteResponse
from tierline.streams.runtime import Pipeline, start_pipeline
from tierline.streams.tail import tail_consumer

FAMILIES = {"gpt-4.1-nano": "openai", "claude-haiku-4-5": "anthropic"}
FAMILIES["gemini-2.5-flash-lite"] = "gemini"


@pytest.fixture
async def streaming_sim() -> AsyncIterator[RunningSimulator]:
    # deepseek-chat's streams are cut after their first piece; gpt-4.1 fails every call
    profile = SimulatorProfile(
        seed=21,
        latency_ms=30,
        output_tokens=(40, 60),
        models={
            "deepseek-chat": ModelOverride(stream_cut_rate=1.0),
            "gpt-4.1": ModelOverride(error_rate=1.0),
        },
    )
    sim = await start_simulator(profile)
    yield sim
    await sim.stop()


@pytest.fixture
async def pipeline(
    kafka_bootstrap: str,
    topic_prefix: str,
    chdb_url: str,
    streaming_sim: RunningSimulator,
    tmp_path: Path,
) -> AsyncIterator[Pipeline]:
    settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, streaming_sim.url, tmp_path)
    running = await start_pipeline(settings, roles=("router", "workers", "sink"))
    try:
        yield running
    finally:
        await asyncio.wait_for(running.stop(), timeout=60)


def split(records: list[Any]) -> tuple[dict[str, list[ResponseChunk]], dict[str, RouteResponse]]:
    """The records of the response topic: chunks by request id, and responses by id."""
    chunks: dict[str, list[ResponseChunk]] = {}
    responses: dict[str, RouteResponse] = {}
    for record in records:
        body = orjson.loads(record.value)
        if body.get("object") == "tierline.chunk":
            chunk = ResponseChunk.model_validate(body)
            chunks.setdefault(chunk.id, []).append(chunk)
        else:
            response = RouteResponse.model_validate(body)
            assert response.id not in responses, f"{response.id} answered twice"
            responses[response.id] = response
    return chunks, responses


def streamed(rid: str, model: str, **params: Any) -> bytes:
    return request_body(
        rid,
        "Write three sentences about parcels.",
        hints={"model": model},
        params={"stream": True, "max_tokens": 80, **params},
    )


async def test_a_kafka_consumer_reads_each_stream_in_order_then_its_one_response(
    pipeline: Pipeline, kafka_bootstrap: str, topic_prefix: str, streaming_sim: RunningSimulator
) -> None:
    responses_topic = await tail_consumer(kafka_bootstrap, pipeline.topics.responses)
    ids = {f"{topic_prefix}s-{family}": model for model, family in FAMILIES.items()}
    whole = f"{topic_prefix}whole"
    await produce(
        kafka_bootstrap,
        pipeline.topics.requests,
        [streamed(rid, model) for rid, model in ids.items()]
        + [request_body(whole, "Write three sentences about parcels.")],
    )
    records = await collect(responses_topic, 4, timeout_s=60, settle_s=2)
    await responses_topic.stop()
    chunks, responses = split(records)
    assert set(responses) == {*ids, whole}
    assert whole not in chunks  # a request that does not stream gets no chunks
    for rid, model in ids.items():
        response = responses[rid]
        assert response.status == "ok", response.error
        assert response.model == model
        pieces = chunks[rid]
        assert len(pieces) >= 2, (model, len(pieces))  # streamed, not one piece
        assert [c.seq for c in pieces] == list(range(len(pieces)))
        assert len({c.serving for c in pieces}) == 1
        assert "".join(c.delta for c in pieces) == response.content
        assert response.usage.output_tokens > 0 and response.cost_usd > 0
        # on the topic every chunk comes before its response
        positions = [i for i, r in enumerate(records) if r.key == rid.encode()]
        last = positions[-1]
        assert orjson.loads(records[last].value).get("object") != "tierline.chunk"
    assert streaming_sim.stats.streams  # the simulator was asked to stream


async def test_a_stream_falls_back_before_its_first_piece_but_not_after(
    pipeline: Pipeline, kafka_bootstrap: str, topic_prefix: str
) -> None:
    responses_topic = await tail_consumer(kafka_bootstrap, pipeline.topics.responses)
    cut = f"{topic_prefix}cut"
    fell_back = f"{topic_prefix}fell-back"
    await produce(
        kafka_bootstrap,
        pipeline.topics.requests,
        [
            streamed(cut, "deepseek-chat"),
            # premium: gpt-4.1 (fails before any piece), then claude-sonnet-4-5
            request_body(
                fell_back,
                "Write three sentences about parcels.",
                hints={"min_tier": "premium"},
                params={"stream": True, "max_tokens": 80},
            ),
        ],
    )
    records = await collect(responses_topic, 2, timeout_s=60, settle_s=2)
    await responses_topic.stop()
    chunks, responses = split(records)

    broken = responses[cut]
    assert broken.status == "error" and broken.error is not None
    assert "not retried or sent to another model" in broken.error.message
    assert broken.attempts == 1 and len(chunks[cut]) >= 1

    answered = responses[fell_back]
    assert answered.status == "ok", answered.error
    assert answered.model == "claude-sonnet-4-5" and answered.attempts >= 2
    pieces = chunks[fell_back]
    assert {c.model for c in pieces} == {"claude-sonnet-4-5"}  # gpt-4.1 streamed nothing
    assert "".join(c.delta for c in pieces) == answered.content
