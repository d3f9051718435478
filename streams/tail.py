"""Reading a topic from "now on", without a consumer group: what the demo, bench and tests need."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from tierline.streams.topics import partition_ids


async def tail_consumer(
    bootstrap: str, topic: str, *, from_start: bool = False
) -> AIOKafkaConsumer:
    """A group-less consumer on every partition of `topic`, at its end (or its start)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    partitions = [TopicPartition(topic, p) for p in await partition_ids(bootstrap, topic)]
    await consumer.start()
    if not partitions:
        await consumer.stop()
        raise RuntimeError(f"topic {topic} does not exist")
    consumer.assign(partitions)
    if from_start:
        await consumer.seek_to_beginning(*partitions)
    else:
        await consumer.seek_to_end(*partitions)
    for tp in partitions:
        await consumer.position(tp)
    return consumer
