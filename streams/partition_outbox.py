"""Exactly once on Kafka transactions: one transactional producer per input partition.

Each input partition a role owns gets an outbox: a producer whose
`transactional_id` names the group, topic and partition. Answers for the
partition's messages queue in it; a loop takes what has queued (group commit:
one transaction while the next batch gathers, after a linger of a few ms) and
publishes it in one transaction together with the partition's commit point (the
committed offset, and the out-of-order answers above it, see `offset_ledger`).
Either the answers and the commit land together, or neither does.

Why one producer per partition and not one per process: starting a producer with
a transactional id fences every older producer with that id, and ends its open
transaction at once. So when a partition moves (a rebalance, a SIGKILLed worker's
partitions handed to another), the new owner's first act fences the old owner
and aborts whatever it left half-done; only then does it read the commit point,
which is final by then. With one id per process, a dead process's open
transaction would block `read_committed` readers until its timeout, and a live
but stalled one (a zombie) could still commit.

A producer that turns fatal (fenced, or a transaction the coordinator timed out
during a long broker outage) loses its generation: its queued answers are
dropped, not published, and `on_lost` restarts the partition from the broker's
commit point, so those messages are read and served again. Epochs serialise the
owners: whoever commits holds the newest epoch, and read the commit point after
every earlier epoch's last transaction ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from tierline.streams.config import KafkaSettings
from tierline.streams.group_fencing import CommitReader
from tierline.streams.offset_ledger import OffsetLedger
from tierline.streams.outgoing import Outgoing
from tierline.streams.sender import instead, send_one
from tierline.streams.topics import Topics
from tierline.streams.txn_turnaround import set_concurrent_transaction_retry

ProducerFactory = Callable[[str], AIOKafkaProducer]
T = TypeVar("T")


def transactional_producers(bootstrap: str, kafka: KafkaSettings) -> ProducerFactory:
    """Makes the producer for a transactional id, with tierline's client settings."""
    set_concurrent_transaction_retry(kafka.transaction_retry_ms)

    def new(transactional_id: str) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            transactional_id=transactional_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=kafka.linger_ms,
            max_request_size=kafka.max_message_bytes,
            transaction_timeout_ms=kafka.transaction_timeout_ms,
        )

    return new


def commit_reader(admin: AIOKafkaAdminClient, group_id: str) -> CommitReader:
    """Reads `group_id`'s committed offset and metadata for a partition, from the broker."""

    async def read(tp: TopicPartition) -> tuple[int, str]:
        found = await admin.list_consumer_group_offsets(group_id, partitions=[tp])
        committed = found.get(tp)
        if committed is None or committed.offset < 0:
            return -1, ""
        return committed.offset, committed.metadata or ""

    return read


@dataclass
class Pending:
    offset: int
    sends: Sequence[Outgoing]
    published: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def txn_state(producer: AIOKafkaProducer) -> tuple[bool, bool]:
    """(in a transaction or its abortable error, fatal): aiokafka has no public accessor."""
    manager = producer._txn_manager
    state = manager.state.name
    return state in ("IN_TRANSACTION", "ABORTABLE_ERROR"), bool(manager.is_fatal_error())


def retrieve_failure(producer: AIOKafkaProducer) -> None:
    """Mark a lost producer's failed futures as seen: nobody will await them, and asyncio
    would log each at garbage collection (aiokafka keeps them private)."""
    futures = [producer._txn_manager._transaction_waiter, producer._sender.sender_task]
    for future in futures:
        if future is not None and future.done() and not future.cancelled():
            future.exception()


async def retried(attempt: Callable[[], Awaitable[T]], what: str, log: logging.Logger) -> T:
    """Run `attempt` until it raises no KafkaError, backing off from 0.2 s to 5 s; each
    failure is logged as `what` failed."""
    delay = 0.2
    while True:
        try:
            return await attempt()
        except KafkaError as exc:
            log.warning("%s failed (%s); retrying", what, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def started_producer(
    new_producer: Callable[[], AIOKafkaProducer], what: str, log: logging.Logger
) -> AIOKafkaProducer:
    """A transactional producer from `new_producer`, started (its InitProducerId fences
    older producers with its id), retried on a fresh one until the broker answers."""

    async def attempt() -> AIOKafkaProducer:
        producer = new_producer()
        try:
            await producer.start()
        except KafkaError:
            await producer.stop()
            raise
        return producer

    return await retried(attempt, what, log)


class OwnedPartition:
    """What an owner knows of one input partition: the ledger it resumed with, and the
    offsets read before it had (a record may come before its assignment callback ends)."""

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.ledger: OffsetLedger | None = None
        self.lost = False
        #: resuming has begun (a partition made by an early record waits for its assignment)
        self.opening = False
        self._early: set[int] = set()
        self._opened = asyncio.Event()

    async def resume(self, read_commit: CommitReader, who: str, log: logging.Logger) -> None:
        """Read the partition's commit point (retrying) and take up its ledger from there."""
        offset, metadata = await retried(
            lambda: read_commit(self.tp), f"{who}: reading the commit point of {self.tp}", log
        )
        ledger = OffsetLedger.from_commit(offset, metadata)
        for early in sorted(self._early):
            ledger.take(early)
        self._early.clear()
        self.ledger = ledger
        log.info(
            "%s: %s resumes at offset %d, %d answered above it",
            who,
            self.tp,
            ledger.base,
            sum(1 for o in range(ledger.base, ledger.end) if ledger.answered(o)),
        )
        self._opened.set()

    async def ready(self, timeout_s: float = 120.0) -> bool:
        """Wait for `resume`; False if it did not happen in time (the partition never came)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._opened.wait()
        except TimeoutError:
            return False
        return True

    def take(self, offset: int) -> None:
        """The message at `offset` was read; before `resume` ends, it is decided then."""
        if self.ledger is None:
            self._early.add(offset)
        else:
            self.ledger.take(offset)

    def must_serve(self, offset: int) -> bool:
        """After `ready`: whether the message at `offset` still needs an answer."""
        return self.ledger is not None and not self.lost and offset in self.ledger.unfinished


class PartitionOutbox(OwnedPartition):
    """One input partition's transactional producer, its ledger, and its queue of answers."""

    def __init__(
        self,
        tp: TopicPartition,
        group_id: str,
        new_producer: ProducerFactory,
        topics: Topics,
        *,
        linger_s: float,
        who: str,
        log: logging.Logger,
        on_lost: Callable[[PartitionOutbox], None],
    ) -> None:
        super().__init__(tp)
        self.group_id = group_id
        self.transactional_id = f"{group_id}.{tp.topic}.{tp.partition}"
        self.topics = topics
        self.linger_s = linger_s
        self.who = who
        self.log = log
        self.on_lost = on_lost
        self.transactions = 0
        self._new_producer = new_producer
        self._producer: AIOKafkaProducer | None = None
        self._queue: list[Pending] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    async def open(self, read_commit: CommitReader) -> None:
        """Fence the partition's previous owner, then read where it left off."""
        self._producer = await self._started_producer()
        await self.resume(read_commit, self.who, self.log)
        self._task = asyncio.create_task(self._run(), name=f"outbox.{self.transactional_id}")

    async def _started_producer(self) -> AIOKafkaProducer:
        return await started_producer(
            lambda: self._new_producer(self.transactional_id),
            f"{self.who}: starting the transactional producer for {self.tp}",
            self.log,
        )

    def publish(self, offset: int, sends: Sequence[Outgoing]) -> asyncio.Future[bool]:
        """Queue the answers to the message at `offset`; resolves True once committed.

        False means they were not published and never will be by this owner: the
        partition moved or its producer was lost, and the message is served again.
        """
        item = Pending(offset, sends)
        if self.lost or self._task is None or self._task.done():
            item.published.set_result(False)
            return item.published
        self._queue.append(item)
        self._idle.clear()
        self._wake.set()
        return item.published

    async def close(self, timeout_s: float = 30.0) -> None:
        """Publish what has queued (for up to `timeout_s`), then stop the producer."""
        if self._task is not None and not self.lost:
            try:
                async with asyncio.timeout(timeout_s):
                    await self._idle.wait()
            except TimeoutError:
                self.log.warning("%s: %s closed with answers unpublished", self.who, self.tp)
        self._discard()
        if self._producer is not None:
            await self._producer.stop()

    def _discard(self) -> None:
        self.lost = True
        if self._task is not None:
            self._task.cancel()
        for item in self._queue:
            if not item.published.done():
                item.published.set_result(False)
        self._queue.clear()
        self._idle.set()

    async def _run(self) -> None:
        waited = False  # as in ProcessOutbox: only the first answer after a quiet spell lingers
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._queue:
                self._idle.set()
                waited = False
                continue
            if self.linger_s and not waited:
                await asyncio.sleep(self.linger_s)
            waited = False
            assert self.ledger is not None
            batch, self._queue = self._queue, []
            offsets, held = self.ledger.admissible(item.offset for item in batch)
            keep = set(offsets)
            taken = [item for item in batch if item.offset in keep]
            self._queue[:0] = [item for item in batch if item.offset not in keep]
            if held:
                self.log.info("%s: %s holds %d answers back a turn", self.who, self.tp, len(held))
            if not await self._transact(taken):
                return
            if self._queue:
                waited = True
                self._wake.set()
            else:
                self._idle.set()

    async def _transact(self, items: list[Pending]) -> bool:
        """Publish `items` and the commit point in one transaction; False: the producer is lost."""
        ledger = self.ledger
        assert ledger is not None
        sends = [send for item in items for send in item.sends]

        def commit_point() -> dict[TopicPartition, OffsetAndMetadata]:
            point = ledger.commit(item.offset for item in items)
            return {self.tp: OffsetAndMetadata(point.offset, point.metadata)}

        tries, delay = 0, 0.1
        while True:
            producer = self._producer
            assert producer is not None
            try:
                await transact(producer, sends, commit_point, self.group_id)
            except (KafkaError, SendsFailed) as exc:
                if not await self._recover(producer, exc):
                    for item in items:
                        if not item.published.done():
                            item.published.set_result(False)
                    return False
                if isinstance(exc, SendsFailed):
                    tries += 1
                    sends = rerouted(sends, exc.failed, tries, self.topics, self.who, self.log)
                    self._producer = await renewed(producer, self._started_producer)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.transactions += 1
            for item in items:
                if not item.published.done():
                    item.published.set_result(True)
            return True

    async def _recover(self, producer: AIOKafkaProducer, error: Exception) -> bool:
        """Abort the failed transaction; False when the producer is lost (and say so)."""
        in_txn, fatal = txn_state(producer)
        if not fatal and in_txn:
            try:
                await producer.abort_transaction()
            except KafkaError as exc:
                error = exc
            in_txn, fatal = txn_state(producer)
        if fatal or in_txn:
            retrieve_failure(producer)
            self.log.warning(
                "%s: producer for %s lost (%s); %s restarts from its commit point if still ours",
                self.who,
                self.tp,
                error,
                self.tp,
            )
            self._discard()
            self.on_lost(self)
            return False
        self.log.warning("%s: transaction for %s failed (%s); retrying", self.who, self.tp, error)
        return True


async def transact(
    producer: AIOKafkaProducer,
    sends: Sequence[Outgoing],
    offsets: Callable[[], dict[TopicPartition, OffsetAndMetadata]],
    group_id: str,
) -> None:
    """One transaction: `sends`, and the commit point `offsets()` gives, committed together.

    `offsets` is called once every send is acked, just before the commit point goes
    (making one records the answers in the partition's ledger, `OffsetLedger.commit`).
    The acks come first: aiokafka commits a transaction whose produce request failed
    without that record, so a failed send raises `SendsFailed` and the caller aborts.
    Sending the commit point while the sends are in flight would save ~1 ms, but on
    Kafka 4 its TxnOffsetCommit now and then reaches the group coordinator while the
    last transaction's markers are still being written; the coordinator answers
    COORDINATOR_NOT_AVAILABLE, and aiokafka looks the coordinator up again and waits
    its 100 ms retry backoff (`python bench/transactions.py`: ~4% of transactions,
    112 ms p99). After the acks it never did.
    """
    await producer.begin_transaction()
    results = await asyncio.gather(*(send_one(producer, s) for s in sends))
    failed = {i: r for i, r in enumerate(results) if r is not None}
    if failed:
        raise SendsFailed(failed)
    await producer.send_offsets_to_transaction(offsets(), group_id)
    await producer.commit_transaction()


async def renewed(
    old: AIOKafkaProducer, start: Callable[[], Awaitable[AIOKafkaProducer]]
) -> AIOKafkaProducer:
    """A new epoch of `old`'s transactional id, after a transaction a send failed in.

    aiokafka keeps the refused batch's sequence numbers, so every later send to that
    partition fails with OutOfOrderSequenceNumber: a response too large for a
    client's reply_to topic was refused twice more that way, then went to the shared
    response topic instead of its error response landing where the client reads. A
    new producer with the same id gets a bumped epoch and fresh sequences. Nothing is
    lost: the transaction was aborted, and its answers go again in the next one.
    """
    retrieve_failure(old)
    await old.stop()
    return await start()


def rerouted(
    sends: list[Outgoing],
    failed: dict[int, BaseException],
    tries: int,
    topics: Topics,
    who: str,
    log: logging.Logger,
) -> list[Outgoing]:
    """All of `sends` again (the transaction aborted), each failed one as `instead` says."""
    return [
        send if i not in failed else instead(send, tries, failed[i], topics, who, log)
        for i, send in enumerate(sends)
    ]


class SendsFailed(Exception):
    """Some sends of a transaction failed; `failed` maps their index to the error."""

    def __init__(self, failed: dict[int, BaseException]) -> None:
        super().__init__(f"{len(failed)} sends failed: {next(iter(failed.values()))}")
        self.failed = failed


class Outboxes:
    """The outboxes of the partitions a consumer owns, opened on assignment, closed on revoke.

    A partition whose producer was lost restarts from the commit point the
    broker holds (`seek` moves the consumer there), after `restart_delay_s` and
    only if `owns` still says the consumer has it: a fenced zombie learns of its
    revocation within a session timeout, and must not fence the new owner back.
    """

    def __init__(
        self,
        group_id: str,
        new_producer: ProducerFactory,
        read_commit: CommitReader,
        topics: Topics,
        *,
        linger_s: float,
        who: str,
        log: logging.Logger,
        seek: Callable[[TopicPartition, int], None],
        owns: Callable[[TopicPartition], bool],
        restart_delay_s: float,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.group_id = group_id
        self.on_close = on_close
        self.owns = owns
        self.restart_delay_s = restart_delay_s
        self.new_producer = new_producer
        self.read_commit = read_commit
        self.topics = topics
        self.linger_s = linger_s
        self.who = who
        self.log = log
        self.seek = seek
        self.boxes: dict[TopicPartition, PartitionOutbox] = {}
        self._restarting: set[asyncio.Task[None]] = set()

    def _box(self, tp: TopicPartition) -> PartitionOutbox:
        return PartitionOutbox(
            tp,
            self.group_id,
            self.new_producer,
            self.topics,
            linger_s=self.linger_s,
            who=self.who,
            log=self.log,
            on_lost=self._lost,
        )

    async def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Open an outbox per partition: fence old owners, read their commit points."""
        fresh = [tp for tp in partitions if tp not in self.boxes or not self.boxes[tp].opening]
        for tp in fresh:
            box = self.boxes.setdefault(tp, self._box(tp))
            box.opening = True
        await asyncio.gather(*(self.boxes[tp].open(self.read_commit) for tp in fresh))

    async def revoke(self, partitions: Iterable[TopicPartition], timeout_s: float = 30.0) -> None:
        boxes = [self.boxes.pop(tp) for tp in partitions if tp in self.boxes]
        await asyncio.gather(*(box.close(timeout_s) for box in boxes))

    def take(self, tp: TopicPartition, offset: int) -> PartitionOutbox:
        """Note the read of `offset`, and say which outbox its answers go to.

        A record may come a moment before its partition's assignment callback
        runs: its outbox is made here and opened by `assign`.
        """
        box = self.boxes.get(tp)
        if box is None:
            box = self.boxes[tp] = self._box(tp)
        box.take(offset)
        return box

    async def close(self) -> None:
        for task in list(self._restarting):
            task.cancel()
        await self.revoke(list(self.boxes))
        if self.on_close is not None:
            await self.on_close()

    def _lost(self, box: PartitionOutbox) -> None:
        task = asyncio.create_task(self._restart(box), name=f"outbox.restart.{box.tp}")
        self._restarting.add(task)
        task.add_done_callback(self._restarting.discard)

    async def _restart(self, lost: PartitionOutbox) -> None:
        """A new generation for a lost partition: fence, read the commit point, read from it."""
        await lost.close(timeout_s=0)
        await asyncio.sleep(self.restart_delay_s)
        if self.boxes.get(lost.tp) is not lost:
            return  # revoked meanwhile, or already restarted
        if not self.owns(lost.tp):
            self.log.info("%s: %s is no longer ours; not restarting it", self.who, lost.tp)
            del self.boxes[lost.tp]
            return
        box = self.boxes[lost.tp] = self._box(lost.tp)
        box.opening = True
        await box.open(self.read_commit)
        assert box.ledger is not None
        self.seek(lost.tp, box.ledger.base)


async def consumer_outboxes(
    consumer: AIOKafkaConsumer,
    bootstrap: str,
    group_id: str,
    kafka: KafkaSettings,
    topics: Topics,
    *,
    linger_s: float,
    who: str,
    log: logging.Logger,
) -> Outboxes:
    """The outboxes of `consumer`'s partitions, reading commit points with their own admin
    client (closed with them); a lost partition restarts after a session timeout."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    return Outboxes(
        group_id,
        transactional_producers(bootstrap, kafka),
        commit_reader(admin, group_id),
        topics,
        linger_s=linger_s,
        who=who,
        log=log,
        seek=consumer.seek,
        owns=lambda tp: tp in consumer.assignment(),
        restart_delay_s=kafka.session_timeout_ms / 1000,
        on_close=admin.close,
    )
