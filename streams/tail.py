"""Reading a topic from "now on", without a consumer group: what the demo, bench and tests need."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition

from tierline.streams.topics import partition_ids


async def tail_consumer(
    bootstrap: str,
    topic: str,
    *,
    from_start: bool = False,
    wait_s: float = 10.0,
    isolation_level: str = "read_committed",
) -> AIOKafkaConsumer:
    """A group-less consumer on every partition of `topic`, at its end (or its start).

    It reads committed transactions only, as any client of tierline's topics should
    (`Settings.isolation_level` says what tierline's own consumers use).

    A topic created a moment ago may not show its partitions yet: they are waited for,
    up to `wait_s`, before the topic is said not to exist.
    """
    deadline = time.monotonic() + wait_s
    # no event says that a new topic's partitions are ready: ask the broker again
    while not (ids := await partition_ids(bootstrap, topic)) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    if not ids:
        raise RuntimeError(f"topic {topic} does not exist")
    partitions = [TopicPartition(topic, p) for p in ids]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level=isolation_level,
        fetch_max_wait_ms=10,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    consumer.assign(partitions)
    if from_start:
        await consumer.seek_to_beginning(*partitions)
    else:
        await consumer.seek_to_end(*partitions)
    for tp in partitions:
        await consumer.position(tp)
    return consumer
