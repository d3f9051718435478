"""Reading a topic from "now on", without a consumer group: what the demo, bench and tests need."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from tierline.streams.topics import partition_ids


async def tail_consumer(
    bootstrap: str,
    topic: str,
    *,
    from_start: bool = False,
    wait_s: float = 10.0,
    isolation_level: str = "read_committed",
    only: Collection[int] | None = None,
    fetch_max_wait_ms: int = 10,
) -> AIOKafkaConsumer:
    """A group-less consumer on every partition of `topic` (or the `only` ones), at its end
    (or its start).

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
    partitions = [TopicPartition(topic, p) for p in ids if only is None or p in only]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level=isolation_level,
        fetch_max_wait_ms=fetch_max_wait_ms,  # short: a tail reads to an end and stops
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


async def caught_up(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    """Whether `consumer` has read every partition of `ends` up to its end offset there."""
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


async def read_topic(
    bootstrap: str,
    topic: str,
    isolation_level: str,
    since_ms: int | None = None,
    only: Collection[int] | None = None,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of `topic` (of its `only` partitions, when given; from `since_ms`, epoch
    ms, when given) up to the end offsets it had when reading began; a topic that does not
    exist has none."""
    if not await partition_ids(bootstrap, topic):
        return []
    consumer = await tail_consumer(
        bootstrap, topic, from_start=True, isolation_level=isolation_level, only=only
    )
    try:
        partitions = list(consumer.assignment())
        if since_ms is not None:
            found = await consumer.offsets_for_times({tp: since_ms for tp in partitions})
            ends = await consumer.end_offsets(partitions)
            for tp in partitions:
                at = found.get(tp)
                consumer.seek(tp, ends[tp] if at is None else at.offset)
        return await _read_to_end(consumer, partitions)
    finally:
        await consumer.stop()


async def _read_to_end(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> list[ConsumerRecord[bytes, bytes]]:
    """What `consumer` reads from its positions up to the end offsets as they are now."""
    ends = await consumer.end_offsets(partitions)
    remaining = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
    records: list[ConsumerRecord[bytes, bytes]] = []
    while remaining:
        batch = await consumer.getmany(*remaining, timeout_ms=500)
        for tp, part in batch.items():
            records += [r for r in part if r.offset < ends[tp]]
        for tp in list(remaining):
            if await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
    return records
