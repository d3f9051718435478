"""Both router engines route and reject alike: the aiokafka loop and the faust agent."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

import orjson
import pytest

from tests.integration.support import collect, make_settings, produce, request_body
from tierline.processors.simulator import RunningSimulator
from tierline.schemas import RouteResponse
from tierline.streams.runtime import start_pipeline
from tierline.streams.tail import tail_consumer


@pytest.mark.parametrize("engine", ["aiokafka", "faust"])
async def test_each_router_engine_answers_every_request_once(
    engine: Literal["aiokafka", "faust"],
    kafka_bootstrap: str,
    topic_prefix: str,
    chdb_url: str,
    simulator: RunningSimulator,
    tmp_path: Path,
) -> None:
    settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, simulator.url, tmp_path)
    settings.router.engine = engine
    pipeline = await start_pipeline(settings, roles=("router", "workers"))
    try:
        responses = await tail_consumer(kafka_bootstrap, pipeline.topics.responses)
        tag = f"{topic_prefix}{engine}-"
        bodies = [request_body(f"{tag}p{i}", "Say hi") for i in range(40)]
        bodies.append(request_body(f"{tag}bad", "hi", params={"temperature": 9}))
        await produce(kafka_bootstrap, pipeline.topics.requests, bodies)
        got = await collect(responses, len(bodies), timeout_s=90, settle_s=1)
        answers = [RouteResponse.model_validate(orjson.loads(r.value)) for r in got]
        assert sorted(a.id for a in answers) == sorted(orjson.loads(b)["id"] for b in bodies)
        by_id = {a.id: a for a in answers}
        assert by_id[f"{tag}bad"].status == "error"
        assert sum(a.status == "ok" for a in answers) == 40
        assert pipeline.router is not None and pipeline.router.stats.routed == 40
        await responses.stop()
    finally:
        await asyncio.wait_for(pipeline.stop(), timeout=60)
