"""Fencing by group generation on Apache Kafka: a stale member's offset commit is refused,
and a new owner's read of the commit point waits for the last transaction to end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError
from aiokafka.structs import OffsetAndMetadata

from tests.integration.support import create_topic, group_member
from tierline.streams.group_fencing import CommitReader, bind_group, stable_commit_reader


@dataclass
class Member:
    tp: TopicPartition
    out: str
    group: str
    sender: AIOKafkaProducer
    read: CommitReader


@contextlib.asynccontextmanager
async def member(
    bootstrap: str, prefix: str, generations_behind: Callable[[], int] = lambda: 0
) -> AsyncIterator[Member]:
    """A group member of `<prefix>in` and its transactional producer, committing under the
    member's generation less `generations_behind()`; `read` reads commit points once stable."""
    source = await create_topic(bootstrap, f"{prefix}in", partitions=1)
    out = await create_topic(bootstrap, f"{prefix}out", partitions=1)
    group = f"{prefix}g"
    consumer = await group_member(bootstrap, source, group)
    coordinator = consumer._coordinator
    sender = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"{prefix}t", enable_idempotence=True
    )
    bind_group(
        sender, lambda: (coordinator.generation - generations_behind(), coordinator.member_id)
    )
    await sender.start()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        yield Member(
            TopicPartition(source, 0), out, group, sender, stable_commit_reader(admin, group)
        )
    finally:
        await sender.stop()
        await consumer.stop()
        await admin.close()


async def test_a_commit_under_the_current_generation_lands_and_a_stale_one_is_refused(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    behind = [0]
    async with member(kafka_bootstrap, topic_prefix, lambda: behind[0]) as m:
        async with m.sender.transaction():
            await m.sender.send(m.out, b"a")
            await m.sender.send_offsets_to_transaction({m.tp: OffsetAndMetadata(7, "m7")}, m.group)
        assert await m.read(m.tp) == (7, "m7")

        behind[0] = 1  # the group has moved on from this member's generation
        await m.sender.begin_transaction()
        await m.sender.send(m.out, b"zombie")
        with pytest.raises(CommitFailedError, match="IllegalGeneration"):
            await m.sender.send_offsets_to_transaction({m.tp: OffsetAndMetadata(9, "m9")}, m.group)
        await m.sender.abort_transaction()
        assert await m.read(m.tp) == (7, "m7")


async def test_the_next_owner_reads_the_commit_point_only_after_the_open_transaction(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    async with member(kafka_bootstrap, topic_prefix) as m:
        await m.sender.begin_transaction()
        await m.sender.send(m.out, b"a")
        await m.sender.send_offsets_to_transaction({m.tp: OffsetAndMetadata(3, "open")}, m.group)
        reading = asyncio.ensure_future(m.read(m.tp))
        await asyncio.sleep(1.5)
        assert not reading.done()  # the offsets are pending in an open transaction
        await m.sender.commit_transaction()
        assert await asyncio.wait_for(reading, 10) == (3, "open")
