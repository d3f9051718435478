"""The plain aiokafka router loop routes and rejects like the faust agent."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from tests.integration.support import collect, make_settings, produce, request_body
from tierline.processors.simulator import RunningSimulator
from tierline.schemas import RouteResponse
from tierline.streams.runtime import start_pipeline
from tierline.streams.tail import tail_consumer


async def test_the_plain_router_loop_answers_every_request_once(
    kafka_bootstrap: str,
    topic_prefix: str,
    chdb_url: str,
    simulator: RunningSimulator,
    tmp_path: Path,
) -> None:
    settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, simulator.url, tmp_path)
    settings.router.engine = "aiokafka"
    pipeline = await start_pipeline(settings, roles=("router", "workers"))
    try:
        responses = await tail_consumer(kafka_bootstrap, pipeline.topics.responses)
        bodies = [request_body(f"{topic_prefix}p{i}", "Say hi") for i in range(40)]
        bodies.append(request_body(f"{topic_prefix}bad", "hi", params={"temperature": 9}))
        await produce(kafka_bootstrap, pipeline.topics.requests, bodies)
        got = await collect(responses, len(bodies), timeout_s=90, settle_s=1)
        answers = [RouteResponse.model_validate(orjson.loads(r.value)) for r in got]
        assert sorted(a.id for a in answers) == sorted(orjson.loads(b)["id"] for b in bodies)
        by_id = {a.id: a for a in answers}
        assert by_id[f"{topic_prefix}bad"].status == "error"
        assert sum(a.status == "ok" for a in answers) == 40
        assert pipeline.router is not None and pipeline.router.stats.routed == 40
        await responses.stop()
    finally:
        await asyncio.wait_for(pipeline.stop(), timeout=60)
