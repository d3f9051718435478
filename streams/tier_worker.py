"""Tier workers: consume `tierline.tier.<tier>`, call providers, publish answers and bills.

Flow control is a sack of `max_in_flight` slots. Each message taken off the
topic holds a slot until its response is published; when the sack is empty the
worker pauses its partitions, and resumes them as slots come back. Offsets are
committed only up to the oldest unfinished message (see `commit_gap`), and a
message finished twice is answered once (see `done_log`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from pydantic import ValidationError

from tierline.processors.serving.cascade import serve_routed
from tierline.processors.serving.walk import Dispatcher, Outcome
from tierline.schemas import (
    DeadLetter,
    ErrorInfo,
    ErrorType,
    RoutedRequest,
    RouteResponse,
    Tier,
    encode,
)
from tierline.streams.commit_gap import CommitGap
from tierline.streams.config import Settings
from tierline.streams.done_log import DoneSet, load_done
from tierline.streams.topics import Topics, partition_ids

log = logging.getLogger("tierline.worker")

#: how far back a worker reads the done log when it is handed partitions
DONE_LOOKBACK_S = 600.0


@dataclass
class WorkerStats:
    received: int = 0
    answered: int = 0
    errors: int = 0
    dead_letters: int = 0
    duplicates: int = 0
    paused: int = 0
    started_at: float = field(default_factory=time.monotonic)


class TierWorker:
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
        self.max_in_flight = settings.worker.max_in_flight
        self.stats = WorkerStats()
        self.gap: CommitGap[TopicPartition] = CommitGap()
        self.done = DoneSet(settings.worker.dedupe_capacity)
        self._active: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()
        #: set once a partition's done log is loaded; its messages wait for it
        self._ready: dict[TopicPartition, asyncio.Event] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._internal_topics = frozenset(topics.all())
        self._done_partitions: frozenset[int] = frozenset()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def run(self, stop: asyncio.Event) -> None:
        kafka = self.settings.kafka
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=kafka.fetch_max_wait_ms,
            session_timeout_ms=kafka.session_timeout_ms,
            heartbeat_interval_ms=max(300, kafka.session_timeout_ms // 5),
            max_partition_fetch_bytes=kafka.max_message_bytes,
        )
        self._consumer = consumer
        consumer.subscribe([self.topics.tier(self.tier)], listener=_Rebalance(self))
        await consumer.start()
        log.info(
            "worker %s: consuming %s as group %s",
            self.tier,
            self.topics.tier(self.tier),
            self.group_id,
        )
        next_commit = time.monotonic() + self.settings.worker.commit_interval_s
        try:
            while not stop.is_set():
                room = self.max_in_flight - self.in_flight
                if room <= 0:
                    await self._wait_for_room(consumer, stop)
                    continue
                batch = await consumer.getmany(timeout_ms=100, max_records=room)
                for tp, messages in batch.items():
                    for message in messages:
                        self._take(tp, message)
                if time.monotonic() >= next_commit:
                    await self._commit(consumer)
                    next_commit = time.monotonic() + self.settings.worker.commit_interval_s
        finally:
            await self._drain(timeout_s=self.settings.worker.call_timeout_s)
            for task in list(self._tasks):  # still running: redelivered after restart
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._commit(consumer)
            await consumer.stop()

    async def _wait_for_room(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        """The sack is empty: pause every partition until a slot comes back."""
        assigned = consumer.assignment()
        consumer.pause(*assigned)
        self.stats.paused += 1
        self._room.clear()
        try:
            while self.in_flight >= self.max_in_flight and not stop.is_set():
                try:
                    await asyncio.wait_for(self._room.wait(), timeout=0.5)
                except TimeoutError:
                    await self._commit(consumer)
                self._room.clear()
        finally:
            consumer.resume(*consumer.assignment())

    def _take(self, tp: TopicPartition, message: object) -> None:
        self.stats.received += 1
        offset: int = message.offset  # type: ignore[attr-defined]
        self.gap.start(tp, offset)
        task = asyncio.create_task(self._handle(tp, message))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("worker %s: task failed", self.tier, exc_info=task.exception())
        self._room.set()

    async def _handle(self, tp: TopicPartition, message: object) -> None:
        offset: int = message.offset  # type: ignore[attr-defined]
        raw: bytes = message.value  # type: ignore[attr-defined]
        try:
            await self._serve_message(tp, offset, raw)
        except asyncio.CancelledError:
            # stopped mid-flight (shutdown past its drain time): the offset stays
            # unfinished, so the request is delivered again rather than answered wrongly
            raise
        except BaseException:
            self.gap.finish(tp, offset)
            raise
        self.gap.finish(tp, offset)

    async def _serve_message(self, tp: TopicPartition, offset: int, raw: bytes) -> None:
        try:
            routed = RoutedRequest.model_validate_json(raw)
        except (ValidationError, TypeError, ValueError) as exc:
            await self._dead_letter_unreadable(tp, offset, raw, exc)
            return
        ready = self._ready.get(tp)
        if ready is not None:
            # aiokafka may hand out records before the assignment callback has
            # finished loading the done log; dedupe only after it has
            await ready.wait()
        request_id = routed.request.id
        while request_id in self._active:
            # the same request is in flight (a redelivery after a rebalance): hold this
            # offset until the first copy is answered, so the commit cannot pass it
            await asyncio.sleep(0.05)
        if request_id in self.done:
            self.stats.duplicates += 1
            return
        self._active.add(request_id)
        try:
            try:
                outcome = await serve_routed(self.dispatcher, routed)
            except Exception as exc:
                log.exception("worker %s: serving %s failed", self.tier, request_id)
                outcome = self.dispatcher.internal_failure(routed, exc)
            await self._publish(tp, offset, raw, routed, outcome)
            self.done.add(request_id)
        finally:
            self._active.discard(request_id)

    async def _publish(
        self, tp: TopicPartition, offset: int, raw: bytes, routed: RoutedRequest, outcome: Outcome
    ) -> None:
        """Send the response, the bills, a dead letter if unanswered, and the done record.

        Kafka being down delays this; it never drops it: sends are retried until
        they land, and the message's offset stays uncommitted meanwhile.
        """
        request = routed.request
        sends: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]] | None, int | None]] = [
            (
                request.reply_to or self.topics.responses,
                request.id.encode(),
                encode(outcome.response),
                None,
                None,
            )
        ]
        for cost in outcome.costs:
            sends.append((self.topics.costs, request.tenant.encode(), encode(cost), None, None))
        if outcome.failed:
            error = outcome.response.error
            letter = DeadLetter(
                reason=error.message if error else "unanswered",
                error_type=str(error.type if error else ErrorType.INTERNAL),
                source_topic=tp.topic,
                source_partition=tp.partition,
                source_offset=offset,
                request_id=request.id,
                tenant=request.tenant,
            )
            sends.append((self.topics.dlq, request.id.encode(), raw, letter.to_headers(), None))
        # The done record goes out with the answer and the bills, in the same produce
        # batch, not after their acks: sent after, a crash between the two (measured: one
        # in 400 requests under SIGKILL) answered a request twice. Sent together, a crash
        # loses the answer only if the broker took the done record yet refused the
        # answer, and the worker died before its retry landed.
        done_partition = tp.partition if tp.partition in self._done_partitions else None
        sends.append((self.topics.done(self.tier), request.id.encode(), b"", None, done_partition))
        await self._send_all(sends)
        if outcome.failed:
            self.stats.errors += 1
            self.stats.dead_letters += 1
        else:
            self.stats.answered += 1

    async def _send_all(
        self,
        sends: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]] | None, int | None]],
    ) -> None:
        delay, tries, pending = 0.1, 0, list(sends)
        while pending:
            results = await asyncio.gather(
                *(self._send_one(*send) for send in pending), return_exceptions=True
            )
            failed = [(send, r) for send, r in zip(pending, results, strict=True) if r is not None]
            for _, error in failed:
                if not isinstance(error, KafkaError):
                    raise error
            if not failed:
                return
            tries += 1
            pending = [self._reroute(send, tries, error) for send, error in failed]
            log.warning(
                "worker %s: %d sends failed (%s); retrying in %.1fs",
                self.tier,
                len(pending),
                failed[0][1],
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _send_one(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]] | None,
        partition: int | None,
    ) -> BaseException | None:
        """Send and wait for the ack; the error instead of raising it, so others can finish."""
        try:
            future = await self.producer.send(
                topic, value, key=key, headers=headers, partition=partition
            )
            await future
        except KafkaError as exc:
            error: BaseException = exc
            return error
        return None

    def _reroute(
        self,
        send: tuple[str, bytes | None, bytes, list[tuple[str, bytes]] | None, int | None],
        tries: int,
        error: BaseException | None = None,
    ) -> tuple[str, bytes | None, bytes, list[tuple[str, bytes]] | None, int | None]:
        """What to send instead of a send that failed.

        A response too large for its topic can never land: it becomes an error
        response that can. A client's reply_to topic that keeps refusing (say, it does
        not exist and topics are not auto-created) gets the response on the shared
        response topic instead.
        """
        topic = send[0]
        is_response = topic == self.topics.responses or topic not in self._internal_topics
        if isinstance(error, MessageSizeTooLargeError) and is_response:
            return (topic, send[1], _too_large(send[2]), *send[3:])
        if tries >= 3 and topic not in self._internal_topics:
            log.warning(
                "worker %s: reply_to %s refuses; answering on %s",
                self.tier,
                topic,
                self.topics.responses,
            )
            return (self.topics.responses, *send[1:])
        return send

    async def _dead_letter_unreadable(
        self, tp: TopicPartition, offset: int, raw: bytes, exc: Exception
    ) -> None:
        letter = DeadLetter(
            reason=f"unreadable routed request: {exc}"[:1000],
            error_type=str(ErrorType.INVALID_REQUEST),
            source_topic=tp.topic,
            source_partition=tp.partition,
            source_offset=offset,
        )
        await self._send_all([(self.topics.dlq, None, raw or b"", letter.to_headers(), None)])
        self.stats.dead_letters += 1

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        offsets = self.gap.to_commit(consumer.assignment())
        if not offsets:
            return
        try:
            await consumer.commit(offsets)  # type: ignore[arg-type]
            self.gap.committed(offsets)
        except KafkaError as exc:
            log.warning("worker %s: commit failed (%s); will retry", self.tier, exc)

    async def _drain(self, timeout_s: float) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Before giving partitions away: finish their work and commit it, so no one redoes it."""
        consumer = self._consumer
        if consumer is None or not revoked:
            return
        # a walk can take retries x candidates x call timeout: wait for it, but answer
        # the group well within aiokafka's 300 s poll interval
        worker = self.settings.worker
        walk_s = (worker.max_retries + 1) * worker.call_timeout_s * 3
        deadline = time.monotonic() + min(240.0, walk_s)
        while any(self.gap.in_flight(tp) for tp in revoked) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
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
        events = {tp: asyncio.Event() for tp in assigned}
        self._ready.update(events)
        loaded = 0
        try:
            async with asyncio.timeout(120):
                done_topic = self.topics.done(self.tier)
                self._done_partitions = frozenset(await partition_ids(self.bootstrap, done_topic))
                since = await self._oldest_uncommitted_ms(assigned)
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

    async def _oldest_uncommitted_ms(self, assigned: set[TopicPartition]) -> dict[int, int]:
        """Per partition, from when the done log must be read.

        A done record of a message that is not committed yet was written after that
        message was produced, so reading from the produce time of the message at the
        committed offset (less a minute of clock skew) finds them all; and at least the
        last DONE_LOOKBACK_S, for requests the router forwarded twice.
        """
        consumer = self._consumer
        floor_ms = int((time.time() - DONE_LOOKBACK_S) * 1000)
        since = {tp.partition: floor_ms for tp in assigned}
        if consumer is None or not assigned:
            return since
        reader = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10
        )
        await reader.start()
        try:
            positions = {tp: await consumer.committed(tp) for tp in assigned}
            wanted = {tp: o for tp, o in positions.items() if o is not None}
            if not wanted:
                return since
            reader.assign(list(wanted))
            for tp, committed in wanted.items():
                reader.seek(tp, committed)
            ends = await reader.end_offsets(list(wanted))
            pending = {tp for tp, o in wanted.items() if o < ends[tp]}
            deadline = time.monotonic() + 10
            while pending and time.monotonic() < deadline:
                batch = await reader.getmany(*pending, timeout_ms=500, max_records=len(pending))
                for tp, records in batch.items():
                    if records and tp in pending:
                        since[tp.partition] = min(floor_ms, records[0].timestamp - 60_000)
                        pending.discard(tp)
            for tp in pending:  # could not read it: read the whole retained log
                since[tp.partition] = 0
        finally:
            await reader.stop()
        return since


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: TierWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.worker.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.worker.partitions_assigned(assigned)


def _too_large(response: bytes) -> bytes:
    """An error response in place of a response its topic refuses for its size."""
    original = RouteResponse.model_validate_json(response)
    return encode(
        original.model_copy(
            update={
                "status": "error",
                "content": None,
                "finish_reason": "error",
                "error": ErrorInfo(
                    type=ErrorType.INTERNAL,
                    message=f"the response ({len(response):,} bytes) is larger than its "
                    "topic accepts (max.message.bytes); it was billed",
                ),
            }
        )
    )
