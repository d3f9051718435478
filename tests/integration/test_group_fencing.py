"""Fencing by group generation on Apache Kafka: a stale member's offset commit is refused,
and a new owner's read of the commit point waits for the last transaction to end."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError
from aiokafka.structs import OffsetAndMetadata

from tests.integration.support import create_topic
from tierline.streams.group_fencing import bind_group, stable_commit_reader


async def joined(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=200)
    return consumer


def producer(bootstrap: str, txn_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=txn_id, enable_idempotence=True
    )


async def test_a_commit_under_the_current_generation_lands_and_a_stale_one_is_refused(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    source = await create_topic(kafka_bootstrap, f"{topic_prefix}in", partitions=1)
    out = await create_topic(kafka_bootstrap, f"{topic_prefix}out", partitions=1)
    group, tp = f"{topic_prefix}g", TopicPartition(source, 0)
    consumer = await joined(kafka_bootstrap, source, group)
    coordinator = consumer._coordinator
    stale = [False]
    sender = producer(kafka_bootstrap, f"{topic_prefix}t")
    bind_group(
        sender,
        lambda: (coordinator.generation + (1 if stale[0] else 0), coordinator.member_id),
    )
    await sender.start()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        async with sender.transaction():
            await sender.send(out, b"a")
            await sender.send_offsets_to_transaction({tp: OffsetAndMetadata(7, "m7")}, group)
        read = stable_commit_reader(admin, group)
        assert await read(tp) == (7, "m7")

        stale[0] = True  # the group has moved on from this member's generation
        await sender.begin_transaction()
        await sender.send(out, b"zombie")
        with pytest.raises(CommitFailedError, match="IllegalGeneration"):
            await sender.send_offsets_to_transaction({tp: OffsetAndMetadata(9, "m9")}, group)
        await sender.abort_transaction()
        assert await read(tp) == (7, "m7")
    finally:
        await sender.stop()
        await consumer.stop()
        await admin.close()


async def test_the_next_owner_reads_the_commit_point_only_after_the_open_transaction(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    source = await create_topic(kafka_bootstrap, f"{topic_prefix}in", partitions=1)
    out = await create_topic(kafka_bootstrap, f"{topic_prefix}out", partitions=1)
    group, tp = f"{topic_prefix}g", TopicPartition(source, 0)
    consumer = await joined(kafka_bootstrap, source, group)
    coordinator = consumer._coordinator
    sender = producer(kafka_bootstrap, f"{topic_prefix}t")
    bind_group(sender, lambda: (coordinator.generation, coordinator.member_id))
    await sender.start()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await sender.begin_transaction()
        await sender.send(out, b"a")
        await sender.send_offsets_to_transaction({tp: OffsetAndMetadata(3, "open")}, group)
        reading = asyncio.ensure_future(stable_commit_reader(admin, group)(tp))
        await asyncio.sleep(1.5)
        assert not reading.done()  # the offsets are pending in an open transaction
        await sender.commit_transaction()
        assert await asyncio.wait_for(reading, 10) == (3, "open")
    finally:
        await sender.stop()
        await consumer.stop()
        await admin.close()
