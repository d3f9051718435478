"""One transactional producer per process on Apache Kafka: answers and commit points land
together, and a zombie the group has moved on from never publishes again."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.integration.support import collect, create_topic, group_member
from tierline.schemas import RouteResponse, encode
from tierline.streams.config import KafkaSettings
from tierline.streams.group_fencing import stable_commit_reader
from tierline.streams.outgoing import Outgoing
from tierline.streams.partition_outbox import transactional_producers
from tierline.streams.process_outbox import PartitionSlot, ProcessOutbox
from tierline.streams.tail import tail_consumer
from tierline.streams.topics import Topics

log = logging.getLogger("test.process_outbox")


def outbox(
    bootstrap: str, admin: AIOKafkaAdminClient, group: str, name: str, view: list[tuple[int, str]]
) -> ProcessOutbox:
    """An outbox committing under `view[0]`: the group generation as its owner believes it."""
    return ProcessOutbox(
        group,
        f"{group}.{name}",
        transactional_producers(bootstrap, KafkaSettings(transaction_timeout_ms=10_000)),
        lambda: view[0],
        stable_commit_reader(admin, group),
        Topics("unused."),
        linger_s=0.002,
        who=name,
        log=log,
        seek=lambda tp, offset: None,
        owns=lambda tp: True,
    )


async def answer(slot: PartitionSlot, out: str, offsets: list[int], tag: str = "") -> list[bool]:
    await slot.ready()
    published = [slot.publish(o, [Outgoing(out, None, f"{tag}{o}".encode())]) for o in offsets]
    return list(await asyncio.gather(*published))


async def test_a_zombie_cannot_commit_and_the_next_owner_resumes_at_the_commit_point(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    source = await create_topic(kafka_bootstrap, f"{topic_prefix}in", partitions=1)
    out = await create_topic(kafka_bootstrap, f"{topic_prefix}out", partitions=1)
    tp, group = TopicPartition(source, 0), f"{topic_prefix}group"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    reader = await tail_consumer(kafka_bootstrap, out, from_start=True)
    first_member = await group_member(kafka_bootstrap, source, group)
    coordinator = first_member._coordinator
    first_view = [(coordinator.generation, coordinator.member_id)]
    first = outbox(kafka_bootstrap, admin, group, "first", first_view)
    second_view: list[tuple[int, str]] = []
    second = outbox(kafka_bootstrap, admin, group, "second", second_view)
    try:
        await first.start()
        await first.assign([tp])
        for offset in range(8):
            slot = first.take(tp, offset)
        # answered out of order: 3 and 6 are still being served when the owner changes
        assert await answer(slot, out, [0, 1, 2, 4, 5, 7]) == [True] * 6
        assert first.transactions >= 1

        # the first member leaves the group, but its outbox lives on with its old view
        await first_member.stop()
        second_member = await group_member(kafka_bootstrap, source, group)
        live = second_member._coordinator
        second_view.append((live.generation, live.member_id))
        assert live.generation > first_view[0][0]
        await second.start()
        await second.assign([tp])
        for offset in range(10):  # everything is delivered again from the committed offset
            fresh = second.take(tp, offset)
        assert [o for o in range(10) if fresh.must_serve(o)] == [3, 6, 8, 9]

        assert await answer(slot, out, [3], tag="zombie") == [False]  # refused: stale generation
        assert slot.lost
        assert await answer(fresh, out, [3, 6, 8, 9]) == [True] * 4

        values = [r.value for r in await collect(reader, 10, timeout_s=30, settle_s=2)]
        assert sorted(values) == sorted(f"{o}".encode() for o in range(10))
        committed = (await admin.list_consumer_group_offsets(group, partitions=[tp]))[tp]
        assert committed.offset == 10
        await second_member.stop()
    finally:
        await reader.stop()
        await first.close()
        await second.close()
        await admin.close()


async def test_one_transaction_carries_several_partitions_answers_and_commit_points(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    source = await create_topic(kafka_bootstrap, f"{topic_prefix}in", partitions=3)
    out = await create_topic(kafka_bootstrap, f"{topic_prefix}out", partitions=1)
    group = f"{topic_prefix}group"
    tps = [TopicPartition(source, p) for p in range(3)]
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    reader = await tail_consumer(kafka_bootstrap, out, from_start=True)
    owner = await group_member(kafka_bootstrap, source, group)
    view = [(owner._coordinator.generation, owner._coordinator.member_id)]
    box = outbox(kafka_bootstrap, admin, group, "one", view)
    box.linger_s = 0.2  # everything below gathers into one transaction
    try:
        await box.start()
        await box.assign(tps)
        slots = [box.take(tp, offset) for tp in tps for offset in range(4)]
        results = await asyncio.gather(
            *(answer(slot, out, [i % 4], f"{slot.tp.partition}-") for i, slot in enumerate(slots))
        )
        assert all(r == [True] for r in results)
        assert box.transactions == 1
        read = stable_commit_reader(admin, group)  # once the commit markers are written
        assert [(await read(tp))[0] for tp in tps] == [4, 4, 4]
        values = sorted(r.value for r in await collect(reader, 12, timeout_s=30, settle_s=1))
        assert values == sorted(f"{p}-{o}".encode() for p in range(3) for o in range(4))
    finally:
        await reader.stop()
        await box.close()
        await owner.stop()
        await admin.close()


async def test_a_send_the_broker_refuses_aborts_the_transaction_and_goes_again_rerouted(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """The commit point is sent while the answers are still in flight; one answer the
    broker refuses for its size must still abort the whole transaction (aiokafka would
    commit it without that record), and the retry carries what `reroute` makes of it."""
    source = await create_topic(kafka_bootstrap, f"{topic_prefix}in", partitions=1)
    out = await create_topic(kafka_bootstrap, f"{topic_prefix}out", partitions=1)
    client = f"{topic_prefix}client"  # a client's reply_to topic, with a small message limit
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(client, 1, 1, topic_configs={"max.message.bytes": "2048"})])
    tp, group = TopicPartition(source, 0), f"{topic_prefix}group"
    readers = [await tail_consumer(kafka_bootstrap, t, from_start=True) for t in (out, client)]
    owner = await group_member(kafka_bootstrap, source, group)
    view = [(owner._coordinator.generation, owner._coordinator.member_id)]
    box = outbox(kafka_bootstrap, admin, group, "one", view)
    box.topics = Topics(topic_prefix)
    big = RouteResponse(id="r1", tenant="acme", status="ok", content="x" * 8000)
    try:
        await box.start()
        await box.assign([tp])
        slot = box.take(tp, 0)
        box.take(tp, 1)
        box.take(tp, 2)
        await slot.ready()
        published = await asyncio.gather(
            slot.publish(0, [Outgoing(client, b"r1", encode(big))]),
            slot.publish(1, [Outgoing(out, None, b"fine")]),
        )
        assert list(published) == [True, True]
        assert box.transactions == 1  # the aborted first try is not counted
        # the client's partition takes the producer's next answer too
        small = RouteResponse(id="r2", tenant="acme", status="ok", content="short")
        assert await slot.publish(2, [Outgoing(client, b"r2", encode(small))]) is True
        [fine] = await collect(readers[0], 1, timeout_s=30, settle_s=2)
        assert fine.value == b"fine"  # once: the aborted first try is never read
        instead, later = await collect(readers[1], 2, timeout_s=30, settle_s=2)
        answer = RouteResponse.model_validate_json(instead.value)
        assert (answer.id, answer.status) == ("r1", "error")
        assert answer.error is not None and "larger than its topic accepts" in answer.error.message
        assert RouteResponse.model_validate_json(later.value).id == "r2"
        assert box.transactions == 2
        assert (await stable_commit_reader(admin, group)(tp))[0] == 3
    finally:
        for reader in readers:
            await reader.stop()
        await box.close()
        await owner.stop()
        await admin.close()
