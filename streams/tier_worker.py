"""Tier workers: consume `tierline.tier.<tier>`, call providers, publish answers and bills.

One consumer reads every tier topic a workers process serves (one fetch loop, one
group, one transactional producer), and each tier keeps its own bound.
Backpressure is a sack of `max_in_flight` slots per tier. Each message taken off
a tier's topic holds one of that tier's slots until its response is published;
when a tier's sack is empty the worker pauses that tier's partitions (its
requests wait in Kafka, durably) and resumes them as slots come back, while the
other tiers go on. What to publish for a served request is the pure step
`worker_step.respond`; this module is the loop around it. A request the response
cache holds an answer for is answered from it, with no provider call
(`worker_cache`). A request that streams has its answer's pieces published as they
come (`chunk_stream`), before its response. A batch-tier request whose model has a
batch API waits for its provider batch (`batch_lane`), holding its slot and its
offset for as long.

Exactly once, two ways. On a Kafka with transactions (the default there), each
partition's answers and its commit point go out in one transaction
(`exactly_once`): an answer and the record that it was given land together
or not at all. Without them (the embedded broker), offsets are committed up to
the oldest unfinished message (`commit_gap`) and a done log drops redeliveries
(`done_log`): at least once, deduplicated, with a narrow window under a crash.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind
from pydantic import ValidationError

from tierline.processors.serving.batch_lane import BatchLane
from tierline.processors.serving.response_cache import served_from_cache
from tierline.processors.serving.serve import serve
from tierline.processors.serving.walk import Dispatcher, ServeOutcome
from tierline.processors.tracing import (
    TIERLINE_COST_USD,
    TIERLINE_REQUEST_ID,
    TIERLINE_STATUS,
    TIERLINE_TENANT,
    TIERLINE_TIER,
    context_from_kafka,
    failed,
    kafka_headers,
    tracer,
    with_headers,
)
from tierline.schemas import RoutedRequest, Tier
from tierline.streams.adaptive_bound import AdaptiveBound, watch_lag
from tierline.streams.batch_journal import KafkaBatchJournal
from tierline.streams.chunk_stream import ChunkStream
from tierline.streams.commit_gap import CommitGap
from tierline.streams.config import Settings
from tierline.streams.done_log import DoneSet, load_done, since_ms_for
from tierline.streams.exactly_once import Outbox, OutboxSet, open_outboxes
from tierline.streams.metrics import Metrics, watch_consumer_lag
from tierline.streams.outgoing import Outgoing, Source, unreadable
from tierline.streams.sender import Sender
from tierline.streams.topics import Topics, partition_ids
from tierline.streams.worker_cache import BOOT_WAIT_S, Kept, WorkerCache
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


def worker_group(topic_prefix: str, tiers: Sequence[Tier]) -> str:
    """The consumer group of workers serving `tiers`: `worker` for every tier, else
    `worker.<tier>[+<tier>...]` (a group's members must all read the same topics)."""
    if set(tiers) == set(Tier):
        return f"{topic_prefix}worker"
    return f"{topic_prefix}worker." + "+".join(t.value for t in Tier if t in tiers)


class TierWorker:
    """A consumer group member for the tiers it serves: takes messages while a tier has
    free slots, serves each."""

    def __init__(
        self,
        tiers: Sequence[Tier],
        settings: Settings,
        topics: Topics,
        bootstrap: str,
        dispatcher: Dispatcher,
        producer: AIOKafkaProducer,
    ) -> None:
        self.tiers = [t for t in Tier if t in tiers]
        self.settings = settings
        self.topics = topics
        self.bootstrap = bootstrap
        self.dispatcher = dispatcher
        self.producer = producer
        self.group_id = worker_group(settings.kafka.topic_prefix, self.tiers)
        self.name = "workers " + "+".join(self.tiers)
        self.bounds = {tier: self._bound(tier) for tier in self.tiers}
        self.stats = {tier: WorkerStats() for tier in self.tiers}
        self.gap: CommitGap[TopicPartition] = CommitGap()
        self.done = DoneSet(settings.worker.dedupe_capacity)
        self.sender = Sender(producer, topics, self.name, log)
        self._tier_of = {topics.tier(tier): tier for tier in self.tiers}
        self._serving = InFlightIds()
        self._tasks: dict[Tier, set[asyncio.Task[None]]] = {tier: set() for tier in self.tiers}
        #: each task's message, so a rebalance can hand back the ones held for a provider
        self._where: dict[asyncio.Task[None], tuple[TopicPartition, int]] = {}
        self._room = asyncio.Event()
        #: set once a partition's done log is loaded; its messages wait for it
        self._ready: dict[TopicPartition, asyncio.Event] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._done_partitions: dict[Tier, frozenset[int]] = {}
        self.transactional = settings.transactional
        self.outboxes: OutboxSet | None = None
        #: where answers and dead letters are counted, when the process exposes metrics
        self.metrics: Metrics | None = None
        #: the response cache (`[cache]` in the policy), when the process keeps one
        self.cache: WorkerCache | None = None
        self._paused: set[Tier] = set()
        #: polled records waiting for a slot of their tier
        self._backlog: dict[Tier, collections.deque[tuple[TopicPartition, object]]] = {
            tier: collections.deque() for tier in self.tiers
        }

    def _bound(self, tier: Tier) -> AdaptiveBound:
        """A tier's bound on requests in flight; the batch lane's holds requests for hours
        at no cost to the loop, so it is `batch.max_open` and does not adapt."""
        settings = self.settings
        if tier is Tier.BATCH and settings.batch.enabled:
            return AdaptiveBound(settings.batch.max_open, enabled=False)
        return AdaptiveBound(
            settings.worker.max_in_flight, enabled=settings.worker.adaptive_in_flight
        )

    @property
    def batches(self) -> BatchLane | None:
        return self.dispatcher.batches

    def _handed_back_holders(self) -> set[asyncio.Task[None]]:
        """Tasks waiting for a provider that may take long: held for a healthy one, or for
        their batch. A shutdown or rebalance gives them back rather than waiting."""
        holders: set[asyncio.Task[None]] = set()
        health = self.dispatcher.health
        if health is not None:
            holders |= health.holders
        if self.batches is not None:
            holders |= self.batches.holders  # type: ignore[arg-type]
        return holders

    def in_flight(self, tier: Tier | None = None) -> int:
        """Requests being served now, of `tier` or of all tiers."""
        if tier is not None:
            return len(self._tasks[tier])
        return sum(len(tasks) for tasks in self._tasks.values())

    def _tier(self, tp: TopicPartition) -> Tier:
        return self._tier_of[tp.topic]

    async def run(self, stop: asyncio.Event) -> None:
        """Take messages while slots are free, until `stop`; then finish or hand back the rest."""
        # warm before taking any partition: a restarted worker answers from the cache at once
        cache_feed = await self.cache.start(stop) if self.cache is not None else None
        # and knows the open provider batches, so redelivered batch requests are not resubmitted
        lane_tasks = await self._start_lane(stop)
        consumer = self._consumer = self._new_consumer()
        if self.transactional:
            self.outboxes = await open_outboxes(
                consumer,
                self.bootstrap,
                self.group_id,
                self.settings.kafka,
                self.topics,
                who=self.name,
                log=log,
            )
        consumer.subscribe(list(self._tier_of), listener=_Rebalance(self))
        await consumer.start()
        log.info(
            "%s: consuming %s as group %s (%s)",
            self.name,
            ", ".join(self._tier_of),
            self.group_id,
            "transactions" if self.transactional else "done log",
        )
        next_commit = time.monotonic() + self.settings.worker.commit_interval_s
        bounds = list(self.bounds.values())
        watcher = asyncio.create_task(watch_lag(bounds, stop), name=f"lag.{self.group_id}")
        lag = (
            asyncio.create_task(watch_consumer_lag(consumer, self.group_id, self.metrics, stop))
            if self.metrics is not None
            else None
        )
        try:
            while not stop.is_set():
                room = self._pause_full(consumer)
                if room <= 0:
                    await self._wait_for_room(consumer, stop)
                    continue
                batch = await consumer.getmany(timeout_ms=100, max_records=room)
                for tp, messages in batch.items():
                    self._backlog[self._tier(tp)].extend((tp, message) for message in messages)
                self._take_backlog()
                if not self.transactional and time.monotonic() >= next_commit:
                    await self._commit(consumer)
                    next_commit = time.monotonic() + self.settings.worker.commit_interval_s
        finally:
            watcher.cancel()
            for task in (lag, cache_feed):
                if task is not None:
                    task.cancel()
            await self._stop(consumer)
            for task in lane_tasks:
                task.cancel()

    async def _start_lane(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        """Start the batch lane and its journal's reader; wait (up to `BOOT_WAIT_S`) until
        the journal is read."""
        lane = self.batches
        if lane is None:
            return []
        tasks = [asyncio.create_task(lane.run(stop), name="batch lane")]
        journal = lane.journal
        if isinstance(journal, KafkaBatchJournal):
            tasks.append(asyncio.create_task(journal.run(stop), name="batch journal"))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(BOOT_WAIT_S):
                    await journal.warm.wait()
        return tasks

    def _take_backlog(self) -> None:
        """Serve polled records while their tier has free slots, oldest first.

        One poll may bring a tier more records than it has slots (the poll is bounded
        by all tiers' room together); the rest wait here, in partition order, and are
        only then noted as read, so no commit can pass them.
        """
        for tier, backlog in self._backlog.items():
            while backlog and self.in_flight(tier) < self.bounds[tier].limit:
                self._take(*backlog.popleft())

    def _pause_full(self, consumer: AIOKafkaConsumer) -> int:
        """Pause the partitions of tiers with no free slot (or records waiting for one, or
        requests held for a provider), resume the others; return the free slots of the
        tiers still read."""
        self._take_backlog()
        full = {
            tier
            for tier in self.tiers
            if self._backlog[tier] or self.in_flight(tier) >= self.bounds[tier].limit
        }
        health = self.dispatcher.health
        if health is not None:
            # a tier whose requests are held for a provider takes no new ones: they wait
            # in Kafka, durably, until a probe succeeds or the held ones time out
            full |= {tier for tier in self.tiers if health.held[tier] > 0}
        if full != self._paused:
            for tier in full - self._paused:
                self.stats[tier].paused += 1
            assigned = consumer.assignment()
            consumer.pause(*(tp for tp in assigned if self._tier(tp) in full))
            consumer.resume(*(tp for tp in assigned if self._tier(tp) not in full))
            self._paused = full
        return sum(
            self.bounds[tier].limit - self.in_flight(tier)
            for tier in self.tiers
            if tier not in full
        )

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
        tasks = {task for each in self._tasks.values() for task in each}
        for task in tasks & self._handed_back_holders():
            task.cancel()  # held for a provider or a batch: redelivered after restart
        if tasks:
            await asyncio.wait(tasks, timeout=self.settings.worker.call_timeout_s)
        for task in tasks:  # still running: redelivered after restart
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.outboxes is not None:
            await self.outboxes.close()
        else:
            await self._commit(consumer)
        await consumer.stop()

    async def _wait_for_room(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        """Every tier's sack is empty (its partitions are paused): wait for a slot."""
        self._room.clear()
        while self._pause_full(consumer) <= 0 and not stop.is_set():
            try:
                await asyncio.wait_for(self._room.wait(), timeout=0.5)
            except TimeoutError:
                if not self.transactional:
                    await self._commit(consumer)
            self._room.clear()

    def _take(self, tp: TopicPartition, message: object) -> None:
        tier = self._tier(tp)
        self.stats[tier].received += 1
        offset: int = message.offset  # type: ignore[attr-defined]
        self.gap.start(tp, offset)
        box = self.outboxes.take(tp, offset) if self.outboxes is not None else None
        task = asyncio.create_task(self._handle(tp, message, box))
        self._where[task] = (tp, offset)
        tasks = self._tasks[tier]
        tasks.add(task)
        task.add_done_callback(lambda done: self._finished(tasks, done))

    def _finished(self, tasks: set[asyncio.Task[None]], task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        self._where.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: task failed", self.name, exc_info=task.exception())
        self._take_backlog()  # a freed slot serves a waiting record at once
        self._room.set()

    async def _handle(self, tp: TopicPartition, message: object, box: Outbox | None) -> None:
        taken_ns = time.time_ns()
        offset: int = message.offset  # type: ignore[attr-defined]
        raw: bytes = message.value  # type: ignore[attr-defined]
        # the router's `route` span, or the trace the request came with
        trace = _Trace(context_from_kafka(message.headers), taken_ns)  # type: ignore[attr-defined]
        try:
            if box is None:
                await self._serve_message(tp, offset, raw, self._send_with_done, trace)
            elif await box.ready() and box.must_serve(offset):
                await self._serve_message(tp, offset, raw, box.publish, trace)
            else:
                self.stats[self._tier(tp)].duplicates += 1
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
        trace: _Trace | None = None,
    ) -> None:
        trace = trace or _Trace(Context(), time.time_ns())
        tier = self._tier(tp)
        stats = self.stats[tier]
        source = Source(tp.topic, tp.partition, offset, raw)
        try:
            routed = RoutedRequest.model_validate_json(raw)
        except (ValidationError, TypeError, ValueError) as exc:
            if await publish(offset, [unreadable(self.topics.dlq, source, "routed request", exc)]):
                stats.dead_letters += 1
            return
        ready = self._ready.get(tp)
        if ready is not None:
            # aiokafka may hand out records before the assignment callback has
            # finished loading the done log; dedupe only after it has
            await ready.wait()
        # a tenant's ids are its own: another tenant's request with the same id is served;
        # a dead letter sent again (`tierline dlq replay`) is a new generation, served again
        key = routed.request.key
        if routed.request.replay:
            key = f"{key}#r{routed.request.replay}"
        async with self._serving.turn(key):
            if key in self.done:
                stats.duplicates += 1
                log.info("worker %s: %s answered before, dropped", tier, routed.request.id)
                await publish(offset, [])  # the offset is answered: a commit may pass it
                return
            trace.queue_wait(routed)
            with tracer.start_as_current_span(
                "serve", trace.context, kind=SpanKind.CONSUMER, attributes=_attributes(routed)
            ) as span:
                outcome, kept = await self._serve(routed)
                _served(span, outcome)
            sends = respond(routed, outcome, source, self.topics)
            sends = _traced(sends, routed, self.topics, span)
            if kept is not None:
                sends.append(kept.record)  # the new answer, shared with the answer itself
            if not self.transactional:
                done = done_record(
                    key, source, self.topics, tier, self._done_partitions.get(tier, frozenset())
                )
                sends.append(done)
            if not await publish(offset, sends):
                stats.handed_back += 1
                return
            self.done.add(key)
            if kept is not None and self.cache is not None:
                self.cache.published(kept)
            if self.batches is not None:
                self.batches.answered(routed.request)
        self._count(routed, outcome)
        if outcome.failed:
            stats.errors += 1
            stats.dead_letters += 1
        else:
            stats.answered += 1

    def _count(self, routed: RoutedRequest, outcome: ServeOutcome) -> None:
        metrics = self.metrics
        if metrics is None:
            return
        response = outcome.response
        tier = response.tier or routed.decision.tier
        metrics.requests.labels(routed.request.tenant, str(tier), response.status).inc()
        if outcome.failed:
            error = response.error
            metrics.dead_letters.labels(str(error.type) if error else "internal").inc()

    async def _serve(self, routed: RoutedRequest) -> tuple[ServeOutcome, Kept | None]:
        """From the response cache when it holds an answer the request may be given, else
        by the providers; with what of a new answer to keep."""
        started, cache = time.monotonic(), self.cache
        hit = cache.lookup(routed) if cache is not None else None
        if hit is not None:
            latency_ms = round((time.monotonic() - started) * 1000, 3)
            return served_from_cache(routed, hit, latency_ms), None
        request = routed.request
        chunks = (
            ChunkStream(self.producer, request.reply_to or self.topics.responses, request)
            if request.params.stream
            else None
        )
        try:
            outcome = await serve(self.dispatcher, routed, stream_to=chunks)
        except Exception as exc:
            log.exception("%s: serving %s failed", self.name, routed.request.id)
            return self.dispatcher.internal_failure(routed, exc), None
        finally:
            if chunks is not None:
                await chunks.flushed()  # no reader sees the response before its chunks
        return outcome, cache.to_keep(routed, outcome) if cache is not None else None

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        offsets = self.gap.to_commit(consumer.assignment())
        if not offsets:
            return
        try:
            await consumer.commit(offsets)  # type: ignore[arg-type]
            self.gap.committed(offsets)
        except KafkaError as exc:
            log.warning("%s: commit failed (%s); will retry", self.name, exc)

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Before giving partitions away: finish their work and commit it, so no one redoes it."""
        consumer = self._consumer
        if consumer is None or not revoked:
            return
        # records still waiting for a slot were never noted as read: the next owner reads them
        for tier, backlog in self._backlog.items():
            self._backlog[tier] = collections.deque(e for e in backlog if e[0] not in revoked)
        self._hand_back_held(revoked)
        # a walk can take retries x candidates x call timeout: wait for it, but answer
        # the group well within aiokafka's 300 s poll interval
        worker = self.settings.worker
        walk_s = (worker.max_retries + 1) * worker.call_timeout_s * 3
        try:
            async with asyncio.timeout(min(240.0, walk_s)):
                await self.gap.drained(revoked)
        except TimeoutError:
            log.warning(
                "%s: revoked partitions still have work in flight; committing below it",
                self.name,
            )
        if self.outboxes is not None:
            await self.outboxes.revoke(revoked)
        else:
            offsets = self.gap.to_commit(revoked)
            if offsets:
                try:
                    await consumer.commit(offsets)  # type: ignore[arg-type]
                except KafkaError as exc:
                    log.warning("%s: commit on revoke failed: %s", self.name, exc)
        self.gap.forget(revoked)
        for tp in revoked:
            self._ready.pop(tp, None)

    def _hand_back_held(self, revoked: set[TopicPartition]) -> None:
        """Requests of revoked partitions held for a provider (or waiting for their batch)
        are given up, not waited for: unanswered, below the commit point, the next owner
        holds them instead (and finds their batch in the journal)."""
        for task in list(self._handed_back_holders()):
            where = self._where.get(task)
            if where is not None and where[0] in revoked:
                self.gap.abandon(*where)
                self.stats[self._tier(where[0])].handed_back += 1
                task.cancel()

    async def partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._paused = set()  # new partitions start unpaused; the next poll pauses them
        if self.outboxes is not None:
            await self.outboxes.assign(assigned)
            log.info("%s: assigned %s, commit points read", self.name, self._per_tier(assigned))
            return
        events = {tp: asyncio.Event() for tp in assigned}
        self._ready.update(events)
        loaded = 0
        try:
            async with asyncio.timeout(120):
                for tier in {self._tier(tp) for tp in assigned}:
                    loaded += await self._load_done(
                        tier, {tp for tp in assigned if self._tier(tp) is tier}
                    )
        except Exception as exc:  # noqa: BLE001 - never stall the tier on the done log
            log.warning("%s: could not read the done log (%s)", self.name, exc)
        finally:
            for event in events.values():
                event.set()
        log.info("%s: assigned %s, %d done ids loaded", self.name, self._per_tier(assigned), loaded)

    def _per_tier(self, partitions: set[TopicPartition]) -> str:
        """`economy 2 partitions, standard 1 partitions`: what a rebalance gave each tier."""
        counts = collections.Counter(self._tier(tp) for tp in partitions)
        return ", ".join(f"{tier} {counts[tier]} partitions" for tier in self.tiers) or "nothing"

    async def _load_done(self, tier: Tier, assigned: set[TopicPartition]) -> int:
        done_topic = self.topics.done(tier)
        self._done_partitions[tier] = frozenset(await partition_ids(self.bootstrap, done_topic))
        since = await since_ms_for(self.bootstrap, self._consumer, assigned)
        return await load_done(
            self.bootstrap, done_topic, [tp.partition for tp in assigned], self.done, since
        )


@dataclass(frozen=True, slots=True)
class _Trace:
    """A tier record's trace context, and when the worker took the record."""

    context: Context
    taken_ns: int

    def queue_wait(self, routed: RoutedRequest) -> None:
        """The `queue wait` span: from the router's forward to the worker taking it."""
        routed_ns = int(routed.routed_at.timestamp() * 1e9)
        span = tracer.start_span(
            "queue wait",
            self.context,
            attributes=_attributes(routed),
            start_time=min(routed_ns, self.taken_ns),
        )
        span.end(end_time=self.taken_ns)


def _attributes(routed: RoutedRequest) -> dict[str, str]:
    request = routed.request
    return {
        TIERLINE_TENANT: request.tenant,
        TIERLINE_REQUEST_ID: request.id,
        TIERLINE_TIER: str(routed.decision.tier),
    }


def _served(span: Span, outcome: ServeOutcome) -> None:
    """What serving came to, on the `serve` span."""
    if not span.is_recording():
        return
    response = outcome.response
    span.set_attribute(TIERLINE_STATUS, response.status)
    span.set_attribute(TIERLINE_COST_USD, float(response.cost_usd))
    if response.error is not None:
        failed(span, str(response.error.type), response.error.message)


def _traced(
    sends: list[Outgoing], routed: RoutedRequest, topics: Topics, span: Span
) -> list[Outgoing]:
    """`sends` with the response carrying the `serve` span's trace context."""
    trace_headers = kafka_headers(span)
    if not trace_headers:
        return sends
    reply_topic = routed.request.reply_to or topics.responses
    return [
        replace(s, headers=with_headers(s.headers, trace_headers)) if s.topic == reply_topic else s
        for s in sends
    ]


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: TierWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.worker.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.worker.partitions_assigned(assigned)
