"""Exactly once with one transactional producer per process (Kafka's "exactly once v2").

`partition_outbox` gives every input partition its own producer, so a new owner
fences the old one by transactional id. Its cost is the transaction count: each
producer commits on its own, so at a few hundred requests a second nearly every
request is a transaction of its own on each hop, and the broker's work per
transaction (about 1.5 ms of its CPU, measured) dominates a small box.

Here one producer carries the answers of every partition the consumer owns. Each
transaction holds a batch from any of them, and commits each partition's commit
point (`offset_ledger`) together, under the group generation they were read in
(`group_fencing`): the broker refuses the commit of an owner the group has moved
on from, so a zombie's transaction can only abort. A new owner reads a
partition's commit point only once it is stable, i.e. after the last transaction
that commits it has ended. What that costs: when an owner dies (SIGKILL), its
open transaction ends only when the broker times it out
(`kafka.transaction_timeout_ms`), and until then the partitions it wrote to are
held back from `read_committed` readers and its partitions' new owner waits.

The surface is `Outboxes`': `assign`, `revoke`, `take` (a slot with `ready`,
`must_serve`, `publish`), `close`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from tierline.streams.config import KafkaSettings
from tierline.streams.group_fencing import CommitReader, bind_group, stable_commit_reader
from tierline.streams.outgoing import Outgoing
from tierline.streams.partition_outbox import (
    OwnedPartition,
    Pending,
    SendsFailed,
    renewed,
    rerouted,
    retrieve_failure,
    started_producer,
    transact,
    transactional_producers,
    txn_state,
)
from tierline.streams.topics import Topics


class PartitionSlot(OwnedPartition):
    """One owned partition's ledger and queue of answers, sharing the process's producer."""

    def __init__(self, tp: TopicPartition, owner: ProcessOutbox) -> None:
        super().__init__(tp)
        self.owner = owner
        self.queue: list[Pending] = []
        self.outstanding: set[asyncio.Future[bool]] = set()

    def publish(self, offset: int, sends: Sequence[Outgoing]) -> asyncio.Future[bool]:
        """Queue the answers to `offset`; resolves True once committed, False if never."""
        item = Pending(offset, sends)
        if self.lost or self.owner.closed:
            item.published.set_result(False)
            return item.published
        self.queue.append(item)
        self.outstanding.add(item.published)
        item.published.add_done_callback(self.outstanding.discard)
        self.owner.wake()
        return item.published

    def discard(self) -> None:
        """This owner will publish nothing more for the partition."""
        self.lost = True
        for item in self.queue:
            if not item.published.done():
                item.published.set_result(False)
        self.queue.clear()


class ProcessOutbox:
    """The partitions a consumer owns, their answers published by one transactional producer."""

    def __init__(
        self,
        group_id: str,
        transactional_id: str,
        new_producer: Callable[[str], AIOKafkaProducer],
        group_metadata: Callable[[], tuple[int, str]],
        read_commit: CommitReader,
        topics: Topics,
        *,
        linger_s: float,
        who: str,
        log: logging.Logger,
        seek: Callable[[TopicPartition, int], None],
        owns: Callable[[TopicPartition], bool],
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.group_id = group_id
        self.transactional_id = transactional_id
        self.new_producer = new_producer
        self.group_metadata = group_metadata
        self.read_commit = read_commit
        self.topics = topics
        self.linger_s = linger_s
        self.who = who
        self.log = log
        self.seek = seek
        self.owns = owns
        self.on_close = on_close
        self.slots: dict[TopicPartition, PartitionSlot] = {}
        self.closed = False
        self.transactions = 0
        self._producer: AIOKafkaProducer | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the producer (fencing an earlier process with the same id) and the loop."""
        self._producer = await self._started_producer()
        self._task = asyncio.create_task(self._run(), name=f"outbox.{self.transactional_id}")

    async def _started_producer(self) -> AIOKafkaProducer:
        def new() -> AIOKafkaProducer:
            producer = self.new_producer(self.transactional_id)
            bind_group(producer, self.group_metadata)
            return producer

        return await started_producer(
            new, f"{self.who}: starting the transactional producer", self.log
        )

    def wake(self) -> None:
        self._wake.set()

    async def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Take the partitions on: read each one's stable commit point."""
        fresh = []
        for tp in partitions:
            slot = self.slots.get(tp)
            if slot is None or slot.lost:
                slot = self.slots[tp] = PartitionSlot(tp, self)
            if not slot.opening:
                slot.opening = True
                fresh.append(slot)
        await asyncio.gather(*(slot.resume(self.read_commit, self.who, self.log) for slot in fresh))

    async def revoke(self, partitions: Iterable[TopicPartition], timeout_s: float = 30.0) -> None:
        """Publish what the partitions have queued (for up to `timeout_s`), then let them go."""
        slots = [self.slots.pop(tp) for tp in partitions if tp in self.slots]
        outstanding = [f for slot in slots for f in slot.outstanding]
        if outstanding:
            _done, waiting = await asyncio.wait(outstanding, timeout=timeout_s)
            if waiting:
                self.log.warning("%s: %d answers unpublished at revoke", self.who, len(waiting))
        for slot in slots:
            slot.discard()

    def take(self, tp: TopicPartition, offset: int) -> PartitionSlot:
        """Note the read of `offset`; a record may come before its assignment callback runs."""
        slot = self.slots.get(tp)
        if slot is None:
            slot = self.slots[tp] = PartitionSlot(tp, self)
        slot.take(offset)
        return slot

    async def close(self) -> None:
        await self.revoke(list(self.slots))
        self.closed = True
        if self._task is not None:
            self._task.cancel()
        if self._producer is not None:
            await self._producer.stop()
        if self.on_close is not None:
            await self.on_close()

    async def _run(self) -> None:
        # answers that queued while a transaction was in flight go in the next one at
        # once: they have waited already. Only the first answer after a quiet spell
        # lingers, for company.
        waited = False
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.linger_s and not waited:
                await asyncio.sleep(self.linger_s)
            batch = self._gather()
            waited = False
            if not batch:
                continue
            await self._transact(batch)
            if any(slot.queue for slot in self.slots.values()):
                waited = True
                self._wake.set()

    def _gather(self) -> dict[PartitionSlot, list[Pending]]:
        """Take what every slot has queued that its next commit can record."""
        batch: dict[PartitionSlot, list[Pending]] = {}
        for slot in self.slots.values():
            if not slot.queue or slot.ledger is None or slot.lost:
                continue
            offsets, _held = slot.ledger.admissible(item.offset for item in slot.queue)
            keep = set(offsets)
            batch[slot] = [item for item in slot.queue if item.offset in keep]
            slot.queue = [item for item in slot.queue if item.offset not in keep]
        return {slot: items for slot, items in batch.items() if items}

    async def _transact(self, batch: dict[PartitionSlot, list[Pending]]) -> None:
        """Publish `batch` and every partition's commit point in one transaction."""
        sends = [send for items in batch.values() for item in items for send in item.sends]
        tries, delay = 0, 0.1
        while True:
            producer = self._producer
            assert producer is not None
            try:
                await transact(producer, sends, lambda: commit_points(batch), self.group_id)
            except (KafkaError, SendsFailed) as exc:
                if not await self._recover(producer, exc, batch):
                    return
                if isinstance(exc, SendsFailed):
                    tries += 1
                    sends = rerouted(sends, exc.failed, tries, self.topics, self.who, self.log)
                    self._producer = await renewed(producer, self._started_producer)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.transactions += 1
            for items in batch.values():
                for item in items:
                    if not item.published.done():
                        item.published.set_result(True)
            return

    async def _recover(
        self,
        producer: AIOKafkaProducer,
        error: Exception,
        batch: dict[PartitionSlot, list[Pending]],
    ) -> bool:
        """Abort the failed transaction. True: retry it. False: its answers are dropped."""
        in_txn, fatal = txn_state(producer)
        if not fatal and in_txn:
            try:
                await producer.abort_transaction()
            except KafkaError as exc:
                error = exc
            in_txn, fatal = txn_state(producer)
        if isinstance(error, CommitFailedError) and not fatal and not in_txn:
            # the group moved on: these partitions are handed out again (maybe back to us,
            # through `assign`, from the commit point the broker holds)
            self.log.warning("%s: %s; its answers are dropped", self.who, error)
            self._drop(batch, lose=True)
            return False
        if fatal or in_txn:
            retrieve_failure(producer)
            self.log.warning(
                "%s: transactional producer lost (%s); restarting owned partitions from "
                "their commit points",
                self.who,
                error,
            )
            self._drop(batch, lose=False)
            await self._restart()
            return False
        self.log.warning("%s: transaction failed (%s); retrying", self.who, error)
        return True

    def _drop(self, batch: dict[PartitionSlot, list[Pending]], *, lose: bool) -> None:
        for slot, items in batch.items():
            for item in items:
                if not item.published.done():
                    item.published.set_result(False)
            if lose:
                slot.discard()

    async def _restart(self) -> None:
        """A new producer epoch, and every partition still ours re-read from its commit point."""
        old = self._producer
        slots = list(self.slots.values())
        for slot in slots:
            slot.discard()
        if old is not None:
            await old.stop()
        self._producer = await self._started_producer()
        owned = [slot.tp for slot in slots if self.owns(slot.tp)]
        for tp in owned:
            self.slots[tp] = PartitionSlot(tp, self)
        await self.assign(owned)
        for tp in owned:
            ledger = self.slots[tp].ledger
            if ledger is not None:
                self.seek(tp, ledger.base)


def commit_points(
    batch: dict[PartitionSlot, list[Pending]],
) -> dict[TopicPartition, OffsetAndMetadata]:
    """Each partition's commit point once `batch`'s answers are published."""
    offsets = {}
    for slot, items in batch.items():
        assert slot.ledger is not None
        point = slot.ledger.commit(item.offset for item in items)
        offsets[slot.tp] = OffsetAndMetadata(point.offset, point.metadata)
    return offsets


def process_transactional_id(group_id: str) -> str:
    """A transactional id of this process alone: the group, the host, a random part."""
    return f"{group_id}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


async def consumer_process_outbox(
    consumer: AIOKafkaConsumer,
    bootstrap: str,
    group_id: str,
    kafka: KafkaSettings,
    topics: Topics,
    *,
    linger_s: float,
    who: str,
    log: logging.Logger,
) -> ProcessOutbox:
    """The process outbox of `consumer`, started, reading commit points with its own admin
    client (closed with it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()

    def metadata() -> tuple[int, str]:
        coordinator = consumer._coordinator  # made by `start`; commits come after it
        if coordinator is None:
            return -1, ""
        return coordinator.generation, coordinator.member_id

    outbox = ProcessOutbox(
        group_id,
        process_transactional_id(group_id),
        transactional_producers(bootstrap, kafka),
        metadata,
        stable_commit_reader(admin, group_id),
        topics,
        linger_s=linger_s,
        who=who,
        log=log,
        seek=consumer.seek,
        owns=lambda tp: tp in consumer.assignment(),
        on_close=admin.close,
    )
    await outbox.start()
    return outbox
