"""The transactional outbox on Apache Kafka: answers and commit point land together, and an
owner fenced by the next one never publishes again."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.support import collect, create_topic
from tierline.streams.config import KafkaSettings
from tierline.streams.outgoing import Outgoing
from tierline.streams.partition_outbox import Outboxes, commit_reader, transactional_producers
from tierline.streams.tail import tail_consumer
from tierline.streams.topics import Topics

log = logging.getLogger("test.outbox")


class Owner:
    """One owner of the input partition: its outboxes, and where `seek` asked it to read from."""

    def __init__(self, bootstrap: str, admin: AIOKafkaAdminClient, group: str, prefix: str) -> None:
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.owned = True
        self.outboxes = Outboxes(
            group,
            transactional_producers(bootstrap, KafkaSettings(transaction_timeout_ms=10_000)),
            commit_reader(admin, group),
            Topics(prefix),
            linger_s=0.002,
            who=f"owner-{id(self) % 1000}",
            log=log,
            seek=lambda tp, offset: self.seeks.append((tp, offset)),
            owns=lambda tp: self.owned,
            restart_delay_s=0.5,
        )

    async def answer(self, tp: TopicPartition, out: str, offsets: list[int]) -> list[bool]:
        box = self.outboxes.take(tp, offsets[0])
        for offset in offsets[1:]:
            self.outboxes.take(tp, offset)
        await box.ready()
        published = [box.publish(o, [Outgoing(out, None, f"{o}".encode())]) for o in offsets]
        return list(await asyncio.gather(*published))


async def test_a_next_owner_resumes_exactly_where_the_last_commit_left_off(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    source = await create_topic(kafka_bootstrap, f"{topic_prefix}in", partitions=1)
    out = await create_topic(kafka_bootstrap, f"{topic_prefix}out", partitions=1)
    tp, group = TopicPartition(source, 0), f"{topic_prefix}group"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    reader = await tail_consumer(kafka_bootstrap, out, from_start=True)
    first, second = (Owner(kafka_bootstrap, admin, group, topic_prefix) for _ in range(2))
    try:
        await first.outboxes.assign([tp])
        for offset in range(8):
            first.outboxes.take(tp, offset)
        # answered out of order: 3 and 6 are still being served when the owner changes
        assert await first.answer(tp, out, [0, 1, 2, 4, 5, 7]) == [True] * 6
        assert first.outboxes.boxes[tp].transactions >= 1

        first.owned = False  # the group gave the partition away; the first owner is a zombie
        await second.outboxes.assign([tp])  # fences it
        box = second.outboxes.boxes[tp]
        for offset in range(10):  # everything is delivered again from the committed offset
            box.take(offset)
        assert [o for o in range(10) if box.must_serve(o)] == [3, 6, 8, 9]

        late = first.outboxes.boxes[tp].publish(3, [Outgoing(out, None, b"zombie")])
        assert await late is False  # the fenced owner's answer is never published
        assert await second.answer(tp, out, [3, 6, 8, 9]) == [True] * 4

        values = [r.value for r in await collect(reader, 10, timeout_s=30, settle_s=2)]
        assert sorted(values) == sorted(f"{o}".encode() for o in range(10))
        committed = (await admin.list_consumer_group_offsets(group, partitions=[tp]))[tp]
        assert committed.offset == 10
        await asyncio.sleep(1)  # past the restart delay: the zombie did not fence back
        assert first.seeks == [] and tp not in first.outboxes.boxes
        assert second.outboxes.boxes[tp].must_serve(10) is False
        assert await second.answer(tp, out, [10]) == [True]
    finally:
        await reader.stop()
        await first.outboxes.close()
        await second.outboxes.close()
        await admin.close()
