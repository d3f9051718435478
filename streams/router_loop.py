"""The router step on a plain aiokafka loop: the default, measured against the faust agent.

Same step (`RequestRouter.decide`) either way. On a Kafka with transactions each
input partition's forwards and its commit point go out in one transaction
(`exactly_once`), so a crash forwards a request once or not at all. Without
them (the embedded broker), each polled batch is decided, its sends are
acknowledged, and only then are its offsets committed: a crash repeats work
(deduplicated by the workers' done log) and never skips it. What it leaves out is
faust: no second thread and event loop for the consumer, and no tables. Measured
with `tierline bench` (Apache Kafka, 250 req/s): 1.18 ms of router CPU per request
against faust's 1.90. `router.engine = "faust"` runs the agent instead.

With budgets (`streams.budget_keeper`) the loop also reads `tierline.settlements`,
assigned by range so that it owns settlements partition p exactly when it owns
requests partition p; each settlement's ledger change goes out in the same
transaction as its consumed offset, like each forward's reservation.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from tierline.streams.budget_keeper import partitions_of
from tierline.streams.exactly_once import OutboxSet, open_outboxes
from tierline.streams.outgoing import Outgoing
from tierline.streams.router import RequestRouter
from tierline.streams.sender import Sender

log = logging.getLogger("tierline.router")


class PlainRouterLoop:
    def __init__(self, router: RequestRouter, bootstrap: str, producer: AIOKafkaProducer) -> None:
        self.router = router
        self.bootstrap = bootstrap
        self.sender = Sender(producer, router.topics, "router", log)
        self.group_id = f"{router.settings.kafka.topic_prefix}router"
        self.outboxes: OutboxSet | None = None

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.router.settings
        kafka = settings.kafka
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level=settings.isolation_level,
            fetch_max_wait_ms=kafka.fetch_max_wait_ms,
            session_timeout_ms=kafka.session_timeout_ms,
            heartbeat_interval_ms=max(300, kafka.session_timeout_ms // 5),
            max_partition_fetch_bytes=kafka.max_message_bytes,
            # requests and settlements partition p go to the same router (budget ledgers)
            partition_assignment_strategy=(RangePartitionAssignor,),
        )
        topics = self.router.topics
        inputs = [topics.requests, topics.settlements]
        if settings.transactional:
            self.outboxes = await open_outboxes(
                consumer,
                self.bootstrap,
                self.group_id,
                kafka,
                self.router.topics,
                who="router",
                log=log,
                linger_s=0,  # the loop hands over a whole polled batch at once
            )
            consumer.subscribe(inputs, listener=_Rebalance(self, self.outboxes))
        else:
            consumer.subscribe(inputs, listener=_Rebalance(self, None))
        await consumer.start()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=100, max_records=500)
                if not batch:
                    continue
                batch = self._settlements_first(batch)
                if self.outboxes is not None:
                    await self._forward_in_transactions(batch)
                else:
                    await self._forward(batch)
                    await consumer.commit()
        finally:
            if self.outboxes is not None:
                await self.outboxes.close()
            await consumer.stop()

    def _settlements_first(
        self, batch: dict[TopicPartition, list[object]]
    ) -> dict[TopicPartition, list[object]]:
        """A poll's settlements before its requests: a settlement only frees budget, so a
        request polled with it is judged on what was really spent."""
        settlements = self.router.topics.settlements
        return dict(sorted(batch.items(), key=lambda item: item[0].topic != settlements))

    async def _step(self, record: object) -> list[Outgoing]:
        """What one input record makes: a request's forward, or a settlement's ledger change."""
        value, where = _read(record)
        keeper = self.router.budgets
        if keeper is not None:
            await keeper.ready(where[1])  # its ledger is rebuilt before it is used
        if where[0] == self.router.topics.settlements:
            return keeper.settle(value, where[1]) if keeper is not None else []
        headers = record.headers  # type: ignore[attr-defined]
        return await self.router.decide(value, where, headers)

    async def _forward(self, batch: dict[TopicPartition, list[object]]) -> None:
        sends: list[Outgoing] = []
        for records in batch.values():
            for record in records:
                sends += await self._step(record)
        await self.sender.send(sends)

    async def _forward_in_transactions(self, batch: dict[TopicPartition, list[object]]) -> None:
        """Each partition's forwards with its commit point; a partition that moved is skipped."""
        assert self.outboxes is not None
        published: list[tuple[TopicPartition, asyncio.Future[bool]]] = []
        for tp, records in batch.items():
            taken = [(self.outboxes.take(tp, _offset(r)), r) for r in records]
            for box, record in taken:
                offset = _offset(record)
                if await box.ready() and box.must_serve(offset):
                    published.append((tp, box.publish(offset, await self._step(record))))
        # False: the partition moved or its producer was lost; its next owner forwards them
        results = await asyncio.gather(*(future for _, future in published))
        lost = {tp.partition for (tp, _), ok in zip(published, results, strict=True) if not ok}
        keeper = self.router.budgets
        if lost and keeper is not None:
            # the ledger changes of an aborted transaction never happened: read them back
            owned = {p for p in lost if p in keeper.ledgers}
            await keeper.restore(owned)


def _offset(record: object) -> int:
    offset: int = record.offset  # type: ignore[attr-defined]
    return offset


def _read(record: object) -> tuple[bytes | None, tuple[str, int, int]]:
    value: bytes | None = record.value  # type: ignore[attr-defined]
    where = (record.topic, record.partition, record.offset)  # type: ignore[attr-defined]
    return value, where


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: PlainRouterLoop, outboxes: OutboxSet | None) -> None:
        self.loop = loop
        self.outboxes = outboxes

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # the loop awaits each batch's transactions before polling again: nothing is in flight
        if self.outboxes is not None:
            await self.outboxes.revoke(revoked)
        keeper = self.loop.router.budgets
        if keeper is not None:
            keeper.forget(partitions_of(revoked, self.loop.router.topics.requests))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        keeper = self.loop.router.budgets
        requests = partitions_of(assigned, self.loop.router.topics.requests)
        if keeper is not None:
            keeper.expect(requests)  # before anything awaits: records may come early
        if self.outboxes is not None:
            # reads each commit point stably: a previous owner's transaction is settled
            await self.outboxes.assign(assigned)
        if keeper is not None:
            await keeper.restore(requests)
