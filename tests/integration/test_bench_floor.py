"""The bench's floor stage copies every record, once, on a real broker."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.support import collect, create_topic, produce
from tierline.streams.bench_floor import relay
from tierline.streams.tail import tail_consumer


@pytest.mark.parametrize("transactional", [False, True], ids=["plain", "transactional"])
async def test_a_floor_stage_copies_every_record_once(
    kafka_bootstrap: str, topic_prefix: str, transactional: bool
) -> None:
    source = await create_topic(kafka_bootstrap, f"{topic_prefix}floor.in")
    target = await create_topic(kafka_bootstrap, f"{topic_prefix}floor.out")
    out = await tail_consumer(kafka_bootstrap, target, from_start=True)
    stop = asyncio.Event()
    stage = asyncio.create_task(
        relay(
            kafka_bootstrap,
            source,
            target,
            f"{topic_prefix}floor",
            fetch_max_wait_ms=100,
            linger_ms=2,
            stop=stop,
            transactional=transactional,
        )
    )
    try:
        values = [f"m{i}".encode() for i in range(50)]
        await produce(kafka_bootstrap, source, values)
        copied = await collect(out, len(values), timeout_s=60, settle_s=1)
        assert sorted(r.value for r in copied) == sorted(values)
    finally:
        stop.set()
        assert await asyncio.wait_for(stage, timeout=30) == 50
        await out.stop()
