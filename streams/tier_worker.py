"""Tier workers: consume `tierline.tier.<tier>`, call providers, publish answers and bills.

Backpressure is a sack of `max_in_flight` slots. Each message taken off the
topic holds a slot until its response is published; when the sack is empty the
worker pauses its partitions (requests wait in Kafka, durably), and resumes
them as slots come back. What to publish for a served request is the pure step
`worker_step.respond`; this module is the loop around it.

Exactly once, two ways. On a Kafka with transactions (the default there), each
partition's answers and its commit point go out in one transaction
(`partition_outbox`): an answer and the record that it was given land together
or not at all. Without them (the embedded broker), offsets are committed up to
the oldest unfinished message (`commit_gap`) and a done log drops redeliveries
(`done_log`): at least once, deduplicated, with a narrow window under a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from tierline.processors.serving.serve import serve
from tierline.processors.serving.walk import Dispatcher, ServeOutcome
from tierline.schemas import RoutedRequest, Tier
from tierline.streams.adaptive_bound import AdaptiveBound, watch_lag
from tierline.streams.commit_gap import CommitGap
from tierline.streams.config import Settings
from tierline.streams.done_log import DoneSet, load_done, since_ms_for
from tierline.streams.outgoing import Outgoing, Source, unreadable
from tierline.streams.partition_outbox import Outboxes, PartitionOutbox, consumer_outboxes
from tierline.streams.sender import Sender
from tierline.streams.topics import Topics, partition_ids
from tierline.streams.worker_step import done_record, respond

log = logging.getLogger("tierline.worker")


@dataclass
class WorkerStats:
    received: int = 0
    answered: int = 0
    errors: int = 0
    dead_letters: int = 0
    duplicates: int = 0
    #: answers not published because the partition moved or its producer was lost
    handed_back: int = 0
    paused: int = 0
    started_at: float = field(default_factory=time.monotonic)


class InFlightIds:
    """The request ids being served now, each with an event set when its serving ends.

    A second copy of a request in flight (a redelivery after a rebalance, or the
    router forwarding twice) waits for the first copy's turn to end instead of
    being served alongside it: its offset stays unfinished meanwhile, so the
    commit cannot pass it; once the first copy is answered, the done set marks
    the second a duplicate.
    """

    def __init__(self) -> None:
        self._ends: dict[str, asyncio.Event] = {}

    @contextlib.asynccontextmanager
    async def turn(self, request_id: str) -> AsyncIterator[None]:
        while (first := self._ends.get(request_id)) is not None:
            await first.wait()
        ended = self._ends[request_id] = asyncio.Event()
        try:
            yield
        finally:
            del self._ends[request_id]
            ended.set()


class TierWorker:
    """One tier's consumer group member: takes messages while slots are free, serves each."""

    def __init__(
        self,
        tier: Tier,
        settings: Settings,
        topics: Topics,
        bootstrap: str,
        dispatcher: Dispatcher,
        producer: AIOKafkaProducer,
    ) -> None:
        self.tier = tier
        self.settings = settings
        self.topics = topics
        self.bootstrap = bootstrap
        self.dispatcher = dispatcher
        self.producer = producer
        self.group_id = f"{settings.kafka.topic_prefix}worker.{tier}"
        self.bound = AdaptiveBound(
            settings.worker.max_in_flight, enabled=settings.worker.adaptive_in_flight
        )
        self.stats = WorkerStats()
        self.gap: CommitGap[TopicPartition] = CommitGap()
        self.done = DoneSet(settings.worker.dedupe_capacity)
        self.sender = Sender(producer, topics, f"worker {tier}", log)
        self._serving = InFlightIds()
        self._tasks: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()
        #: set once a partition's done log is loaded; its messages wait for it
        self._ready: dict[TopicPartition, asyncio.Event] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._done_partitions: frozenset[int] = frozenset()
        self.transactional = settings.transactional
        self.outboxes: Outboxes | None = None

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def run(self, stop: asyncio.Event) -> None:
        """Take messages while slots are free, until `stop`; then finish or hand back the rest."""
        consumer = self._consumer = self._new_consumer()
        if self.transactional:
            self.outboxes = await consumer_outboxes(
                consumer,
                self.bootstrap,
                self.group_id,
                self.settings.kafka,
                self.topics,
                linger_s=self.settings.kafka.transaction_linger_ms / 1000,
                who=f"worker {self.tier}",
                log=log,
            )
        consumer.subscribe([self.topics.tier(self.tier)], listener=_Rebalance(self))
        await consumer.start()
        log.info(
            "worker %s: consuming %s as group %s (%s)",
            self.tier,
            self.topics.tier(self.tier),
            self.group_id,
            "transactions" if self.transactional else "done log",
        )
        next_commit = time.monotonic() + self.settings.worker.commit_interval_s
        watcher = asyncio.create_task(watch_lag(self.bound, stop), name=f"lag.{self.tier}")
        try:
            while not stop.is_set():
                room = self.bound.limit - self.in_flight
                if room <= 0:
                    await self._wait_for_room(consumer, stop)
                    continue
                batch = await consumer.getmany(timeout_ms=100, max_records=room)
                for tp, messages in batch.items():
                    for message in messages:
                        self._take(tp, message)
                if not self.transactional and time.monotonic() >= next_commit:
                    await self._commit(consumer)
                    next_commit = time.monotonic() + self.settings.worker.commit_interval_s
        finally:
            watcher.cancel()
            await self._stop(consumer)

    def _new_consumer(self) -> AIOKafkaConsumer:
        kafka = self.settings.kafka
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # the router forwards in transactions: serve only what it committed
            isolation_level=self.settings.isolation_level,
            fetch_max_wait_ms=kafka.fetch_max_wait_ms,
            session_timeout_ms=kafka.session_timeout_ms,
            heartbeat_interval_ms=max(300, kafka.session_timeout_ms // 5),
            max_partition_fetch_bytes=kafka.max_message_bytes,
        )

    async def _stop(self, consumer: AIOKafkaConsumer) -> None:
        """Let work in flight finish for up to a call timeout, commit what finished, leave."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.settings.worker.call_timeout_s)
        for task in list(self._tasks):  # still running: redelivered after restart
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.outboxes is not None:
            await self.outboxes.close()
        else:
            await self._commit(consumer)
        await consumer.stop()

    async def _wait_for_room(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        """The sack is empty: pause every partition until a slot comes back."""
        assigned = consumer.assignment()
        consumer.pause(*assigned)
        self.stats.paused += 1
        self._room.clear()
        try:
            while self.in_flight >= self.bound.limit and not stop.is_set():
                try:
                    await asyncio.wait_for(self._room.wait(), timeout=0.5)
                except TimeoutError:
                    if not self.transactional:
                        await self._commit(consumer)
                self._room.clear()
        finally:
            consumer.resume(*consumer.assignment())

    def _take(self, tp: TopicPartition, message: object) -> None:
        self.stats.received += 1
        offset: int = message.offset  # type: ignore[attr-defined]
        self.gap.start(tp, offset)
        box = self.outboxes.take(tp, offset) if self.outboxes is not None else None
        task = asyncio.create_task(self._handle(tp, message, box))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("worker %s: task failed", self.tier, exc_info=task.exception())
        self._room.set()

    async def _handle(
        self, tp: TopicPartition, message: object, box: PartitionOutbox | None
    ) -> None:
        offset: int = message.offset  # type: ignore[attr-defined]
        raw: bytes = message.value  # type: ignore[attr-defined]
        try:
            if box is None:
                await self._serve_message(tp, offset, raw, self._send_with_done)
            elif await box.ready() and box.must_serve(offset):
                await self._serve_message(tp, offset, raw, box.publish)
            else:
                self.stats.duplicates += 1
        except asyncio.CancelledError:
            # stopped mid-flight (shutdown past its drain time): the offset stays
            # unfinished, so the request is delivered again rather than answered wrongly
            raise
        except BaseException:
            self.gap.finish(tp, offset)
            raise
        self.gap.finish(tp, offset)

    async def _send_with_done(self, offset: int, sends: list[Outgoing]) -> bool:
        """The done-log path's publish: send (with the done record `_serve_message` added)."""
        await self.sender.send(sends)
        return True

    async def _serve_message(
        self,
        tp: TopicPartition,
        offset: int,
        raw: bytes,
        publish: Callable[[int, list[Outgoing]], Awaitable[bool]],
    ) -> None:
        source = Source(tp.topic, tp.partition, offset, raw)
        try:
            routed = RoutedRequest.model_validate_json(raw)
        except (ValidationError, TypeError, ValueError) as exc:
            if await publish(offset, [unreadable(self.topics.dlq, source, "routed request", exc)]):
                self.stats.dead_letters += 1
            return
        ready = self._ready.get(tp)
        if ready is not None:
            # aiokafka may hand out records before the assignment callback has
            # finished loading the done log; dedupe only after it has
            await ready.wait()
        # a tenant's ids are its own: another tenant's request with the same id is served
        key = routed.request.key
        async with self._serving.turn(key):
            if key in self.done:
                self.stats.duplicates += 1
                log.info("worker %s: %s answered before, dropped", self.tier, routed.request.id)
                await publish(offset, [])  # the offset is answered: a commit may pass it
                return
            outcome = await self._serve(routed)
            sends = respond(routed, outcome, source, self.topics)
            if not self.transactional:
                done = done_record(key, source, self.topics, self.tier, self._done_partitions)
                sends.append(done)
            if not await publish(offset, sends):
                self.stats.handed_back += 1
                return
            self.done.add(key)
        if outcome.failed:
            self.stats.errors += 1
            self.stats.dead_letters += 1
        else:
            self.stats.answered += 1

    async def _serve(self, routed: RoutedRequest) -> ServeOutcome:
        try:
            return await serve(self.dispatcher, routed)
        except Exception as exc:
            log.exception("worker %s: serving %s failed", self.tier, routed.request.id)
            return self.dispatcher.internal_failure(routed, exc)

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        offsets = self.gap.to_commit(consumer.assignment())
        if not offsets:
            return
        try:
            await consumer.commit(offsets)  # type: ignore[arg-type]
            self.gap.committed(offsets)
        except KafkaError as exc:
            log.warning("worker %s: commit failed (%s); will retry", self.tier, exc)

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Before giving partitions away: finish their work and commit it, so no one redoes it."""
        consumer = self._consumer
        if consumer is None or not revoked:
            return
        # a walk can take retries x candidates x call timeout: wait for it, but answer
        # the group well within aiokafka's 300 s poll interval
        worker = self.settings.worker
        walk_s = (worker.max_retries + 1) * worker.call_timeout_s * 3
        try:
            async with asyncio.timeout(min(240.0, walk_s)):
                await self.gap.drained(revoked)
        except TimeoutError:
            log.warning(
                "worker %s: revoked partitions still have work in flight; committing below it",
                self.tier,
            )
        if self.outboxes is not None:
            await self.outboxes.revoke(revoked)
        else:
            offsets = self.gap.to_commit(revoked)
            if offsets:
                try:
                    await consumer.commit(offsets)  # type: ignore[arg-type]
                except KafkaError as exc:
                    log.warning("worker %s: commit on revoke failed: %s", self.tier, exc)
        self.gap.forget(revoked)
        for tp in revoked:
            self._ready.pop(tp, None)

    async def partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if self.outboxes is not None:
            await self.outboxes.assign(assigned)
            log.info(
                "worker %s: assigned %d partitions, previous owners fenced",
                self.tier,
                len(assigned),
            )
            return
        events = {tp: asyncio.Event() for tp in assigned}
        self._ready.update(events)
        loaded = 0
        try:
            async with asyncio.timeout(120):
                done_topic = self.topics.done(self.tier)
                self._done_partitions = frozenset(await partition_ids(self.bootstrap, done_topic))
                since = await since_ms_for(self.bootstrap, self._consumer, assigned)
                loaded = await load_done(
                    self.bootstrap, done_topic, [tp.partition for tp in assigned], self.done, since
                )
        except Exception as exc:  # noqa: BLE001 - never stall the tier on the done log
            log.warning("worker %s: could not read the done log (%s)", self.tier, exc)
        finally:
            for event in events.values():
                event.set()
        log.info(
            "worker %s: assigned %d partitions, %d done ids loaded",
            self.tier,
            len(assigned),
            loaded,
        )


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: TierWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.worker.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.worker.partitions_assigned(assigned)
