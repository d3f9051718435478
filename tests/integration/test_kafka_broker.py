"""The test broker itself works: what every other integration test builds on."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def test_broker_round_trips_a_message(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}round-trip"  # created on first use (auto.create.topics.enable)

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, key=b"req-1", value=b'{"hello": "kafka"}')
    finally:
        await producer.stop()

    # A consumer group, not a bare assignment: this also exercises the group coordinator and
    # __consumer_offsets, which the streams apps rely on.
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{topic_prefix}group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        received = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()

    assert received.key == b"req-1"
    assert received.value == b'{"hello": "kafka"}'
    assert (received.topic, received.partition, received.offset) == (
        topic,
        sent.partition,
        sent.offset,
    )
